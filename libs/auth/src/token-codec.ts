import { createHash, randomBytes } from 'node:crypto';
import { TOKEN_SCOPES, type TokenScope } from '@app/catalog';

/** Every token starts with this, so a leaked one is easy to grep for. */
export const TOKEN_PREFIX = 'spe_';
const TOKEN_PATTERN = /^spe_[A-Za-z0-9_-]{43}$/;

/** A new token: 32 random bytes from the CSPRNG, base64url. */
export function generateToken(): string {
  return TOKEN_PREFIX + randomBytes(32).toString('base64url');
}

/** The token of an `Authorization: Bearer <token>` header, or null when it holds none. */
export function bearerToken(header: string | string[] | undefined): string | null {
  const match = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
  return match ? match[1]! : null;
}

export function isWellFormedToken(token: string): boolean {
  return TOKEN_PATTERN.test(token);
}

/**
 * SHA-256 of the token. Tokens carry 256 bits of entropy, so a fast hash is
 * enough (no password stretching needed) and lookups stay one indexed query.
 */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** What an operator sees in listings: enough to recognise, useless to use. */
export function tokenDisplayPrefix(token: string): string {
  return token.slice(0, 12);
}

/** `admin` may do everything; otherwise the exact scope is needed. */
export function scopeAllows(granted: readonly TokenScope[], required: TokenScope): boolean {
  return granted.includes('admin') || granted.includes(required);
}

export function parseScopes(list: readonly string[]): TokenScope[] | null {
  const scopes = [...new Set(list.map((s) => s.trim().toLowerCase()).filter((s) => s !== ''))];
  if (scopes.length === 0) return null;
  return scopes.every((s) => (TOKEN_SCOPES as readonly string[]).includes(s)) ? (scopes as TokenScope[]) : null;
}
