import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { SecretsKeyring } from '@app/config';

/** A bare key (tests, tools) or the engine's keyring (`config.secretsKey`). */
export type SecretsKeys = Buffer | SecretsKeyring;

/** A stored secret names a key id that no configured key has. */
export class SecretsKeyMissingError extends Error {
  override name = 'SecretsKeyMissingError';
  constructor(readonly keyId: string, keyring: SecretsKeyring) {
    super(
      `this secret was encrypted with the key of id ${keyId}, which the engine does not have ` +
        `(SECRETS_KEY is id ${keyring.currentId}${keyring.previousIds.length ? `, SECRETS_KEY_PREVIOUS ids ${keyring.previousIds.join(', ')}` : ', no SECRETS_KEY_PREVIOUS'}): ` +
        'add that key to SECRETS_KEY_PREVIOUS',
    );
  }
}

/**
 * Secrets at rest (tenant database passwords, install secrets): AES-256-GCM
 * under the current SECRETS_KEY, a fresh 96-bit IV each time, stored as
 * `v2.<key id>.<iv>.<tag>.<ciphertext>` in base64url. The key id (a short
 * digest of the key, see secretsKeyId) is authenticated with the ciphertext,
 * so a rotation knows which rows still need the previous key. A wrong key or a
 * changed byte fails to decrypt; it never yields a wrong plaintext.
 */
export function encryptSecret(keys: SecretsKeys, plain: string): string {
  const keyring = SecretsKeyring.of(keys);
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', keyring.current, iv);
  cipher.setAAD(Buffer.from(`v2.${keyring.currentId}`));
  const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
  return ['v2', keyring.currentId, ...[iv, cipher.getAuthTag(), body].map((p) => p.toString('base64url'))].join('.');
}

/**
 * Decrypts with the key the ciphertext names (v2), or, for the key-less v1
 * format of earlier rows, with each key of the keyring in turn.
 */
export function decryptSecret(keys: SecretsKeys, stored: string): string {
  const keyring = SecretsKeyring.of(keys);
  const parts = stored.split('.');
  if (parts[0] === 'v2' && parts.length === 5) {
    const [, keyId, iv, tag, body] = parts as [string, string, string, string, string];
    const key = keyring.key(keyId);
    if (!key) throw new SecretsKeyMissingError(keyId, keyring);
    return open(key, iv, tag, body, Buffer.from(`v2.${keyId}`));
  }
  if (parts[0] === 'v1' && parts.length === 4) {
    const [, iv, tag, body] = parts as [string, string, string, string];
    let failure: unknown;
    for (const key of keyring.keys()) {
      try {
        return open(key, iv, tag, body, null);
      } catch (error) {
        failure = error;
      }
    }
    throw new Error(`a v1 secret (no key id) that no configured key decrypts (${keyring.keys().length} tried): ${(failure as Error).message}`);
  }
  throw new Error('not an encrypted secret of this engine');
}

/** The key id a stored secret was encrypted with; null for the v1 format, which carries none. */
export function secretKeyIdOf(stored: string): string | null {
  const parts = stored.split('.');
  return parts[0] === 'v2' && parts.length === 5 ? parts[1]! : null;
}

/** True when the secret is already encrypted with the keyring's current key (nothing to rotate). */
export function isCurrentSecret(keys: SecretsKeys, stored: string): boolean {
  return secretKeyIdOf(stored) === SecretsKeyring.of(keys).currentId;
}

function open(key: Buffer, iv: string, tag: string, body: string, aad: Buffer | null): string {
  // The full 16-byte tag only: GCM would also accept a truncated one, which is easier to forge.
  const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'), { authTagLength: 16 });
  if (aad) decipher.setAAD(aad);
  decipher.setAuthTag(Buffer.from(tag, 'base64url'));
  return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8');
}

const ALPHABETS = {
  alnum: 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789',
  hex: '0123456789abcdef',
  base64url: 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_',
  alpha: 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz',
  digits: '0123456789',
  // No quote, backslash, $, space or comma: safe in every template language, a shell word and a URL's userinfo alike.
  symbols: 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#%+-.:=?@^_~',
} as const;

/** A random string from the CSPRNG, uniform over the alphabet (rejection sampling, no modulo bias). */
export function randomSecret(length: number, alphabet: keyof typeof ALPHABETS = 'alnum'): string {
  const chars = ALPHABETS[alphabet];
  const limit = 256 - (256 % chars.length);
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < limit && out.length < length) out += chars[byte % chars.length];
    }
  }
  return out;
}
