import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

const VERSION = 'v1';

/**
 * Secrets at rest (tenant database passwords, install secrets): AES-256-GCM
 * under SECRETS_KEY, a fresh 96-bit IV each time, stored as
 * `v1.<iv>.<tag>.<ciphertext>` in base64url. A wrong key or a changed byte
 * fails to decrypt; it never yields a wrong plaintext.
 */
export function encryptSecret(key: Buffer, plain: string): string {
  if (key.length !== 32) throw new Error('the secrets key must be 32 bytes');
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
  return [VERSION, iv, cipher.getAuthTag(), body].map((p) => (typeof p === 'string' ? p : p.toString('base64url'))).join('.');
}

export function decryptSecret(key: Buffer, stored: string): string {
  const [version, iv, tag, body] = stored.split('.');
  if (version !== VERSION || iv === undefined || tag === undefined || body === undefined) throw new Error('not an encrypted secret of this engine');
  const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
  decipher.setAuthTag(Buffer.from(tag, 'base64url'));
  return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8');
}

const ALPHABETS = {
  alnum: 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789',
  hex: '0123456789abcdef',
  base64url: 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_',
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
