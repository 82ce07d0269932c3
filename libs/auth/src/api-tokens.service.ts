import { Injectable } from '@nestjs/common';
import { ApiTokenRepository, AuditEventRepository, type ApiToken, type AuditActor, type NewApiToken, type TokenScope } from '@app/catalog';
import { DomainError, NotFoundError, ValidationFailedError } from '@app/common';
import type { Principal } from './auth.decorators.js';
import { bearerToken, generateToken, hashToken, isWellFormedToken, scopeAllows, tokenDisplayPrefix } from './token-codec.js';

export interface IssuedToken {
  /** The token itself: shown once, never stored. */
  token: string;
  record: ApiToken;
}

export interface IssueOptions {
  /** When the token stops working; null or absent: never. Must lie in the future. */
  expiresAt?: Date | null;
}

/** Lets a token's `last_used_at` lag by this much rather than write on every request. */
const LAST_USED_RESOLUTION_MS = 60_000;

@Injectable()
export class ApiTokensService {
  constructor(
    private readonly tokens: ApiTokenRepository,
    private readonly audit: AuditEventRepository,
  ) {}

  issue(name: string, scopes: TokenScope[], by: AuditActor, options: IssueOptions = {}): Promise<IssuedToken> {
    return this.create(name, scopes, by, options.expiresAt ?? null, false);
  }

  /** The active, unexpired token matching this bearer value, or null. */
  async authenticate(token: string, now = new Date()): Promise<ApiToken | null> {
    if (!isWellFormedToken(token)) return null;
    const record = await this.tokens.findActiveByHash(hashToken(token));
    if (!record || isExpired(record, now)) return null;
    if (!record.lastUsedAt || now.getTime() - record.lastUsedAt.getTime() > LAST_USED_RESOLUTION_MS) {
      await this.tokens.markUsed(record.id, now);
    }
    return record;
  }

  /**
   * Who sends this Authorization header, if their token has the `required`
   * scope: 401 without a valid token, 403 without the scope. The global
   * guard's rule, also for public routes that read an optional token.
   */
  async authorize(header: string | string[] | undefined, required: TokenScope): Promise<Principal> {
    const bearer = bearerToken(header);
    if (bearer === null) throw new DomainError('UNAUTHENTICATED', 'Send an API token: Authorization: Bearer <token>', 401);
    const token = await this.authenticate(bearer);
    if (!token) throw new DomainError('UNAUTHENTICATED', 'The API token is unknown, revoked or expired', 401);
    if (!scopeAllows(token.scopes, required)) {
      throw new DomainError('FORBIDDEN', `This token (${token.name}) lacks the "${required}" scope needed here`, 403, { required, granted: token.scopes });
    }
    return { tokenId: token.id, name: token.name, scopes: token.scopes };
  }

  list(): Promise<ApiToken[]> {
    return this.tokens.list();
  }

  async revoke(id: number, by: AuditActor): Promise<ApiToken> {
    const record = await this.tokens.findById(id);
    if (!record) throw new NotFoundError('API token', id);
    if (await this.tokens.revoke(id, new Date())) {
      await this.audit.record({ ...by, action: 'token.revoke', targetType: 'api_token', targetId: id });
    }
    return (await this.tokens.findById(id)) ?? record;
  }

  /**
   * Replaces the token of this name that the engine issued itself with a
   * fresh one: the embedded default prints a new admin token at every start
   * without piling up old ones. Tokens created through the API or a snippet
   * are never touched, whatever their name (only the engine marks its own).
   */
  async rotate(name: string, scopes: TokenScope[], by: AuditActor): Promise<IssuedToken> {
    const now = new Date();
    for (const old of await this.tokens.list()) {
      if (!old.engineIssued || old.name !== name || old.revokedAt) continue;
      if (await this.tokens.revoke(old.id, now)) {
        await this.audit.record({ ...by, action: 'token.revoke', targetType: 'api_token', targetId: old.id, details: { reason: 'replaced by the engine' } });
      }
    }
    return this.create(name, scopes, by, null, true);
  }

  private async create(name: string, scopes: TokenScope[], by: AuditActor, expiresAt: Date | null, engineIssued: boolean): Promise<IssuedToken> {
    if (expiresAt && !(expiresAt.getTime() > Date.now())) {
      throw new ValidationFailedError([{ field: 'expiresAt', problems: [`expiresAt must lie in the future (got ${expiresAt.toISOString()})`] }]);
    }
    const token = generateToken();
    // The repository stores every column it is given; these two are the token's own.
    const row: NewApiToken & Pick<ApiToken, 'expiresAt' | 'engineIssued'> = {
      name,
      scopes,
      tokenHash: hashToken(token),
      prefix: tokenDisplayPrefix(token),
      expiresAt,
      engineIssued,
    };
    const record = await this.tokens.insert(row);
    await this.audit.record({
      ...by,
      action: 'token.create',
      targetType: 'api_token',
      targetId: record.id,
      details: { name, scopes, ...(expiresAt ? { expiresAt: expiresAt.toISOString() } : {}) },
    });
    return { token, record };
  }
}

/** An expired token is refused like a revoked one. */
export function isExpired(token: Pick<ApiToken, 'expiresAt'>, now = new Date()): boolean {
  return token.expiresAt !== null && token.expiresAt !== undefined && token.expiresAt.getTime() <= now.getTime();
}
