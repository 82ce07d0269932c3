import { createCipheriv, randomBytes } from 'node:crypto';
import { SecretsKeyring, secretsKeyId } from '@app/config';
import { decryptSecret, encryptSecret, isCurrentSecret, randomSecret, secretKeyIdOf, SecretsKeyMissingError } from './secrets-cipher.js';

/** A secret as the engine stored it before key ids (format v1): existing rows look like this. */
function encryptV1(key: Buffer, plain: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
  return ['v1', iv, cipher.getAuthTag(), body].map((p) => (typeof p === 'string' ? p : p.toString('base64url'))).join('.');
}

describe('secrets at rest with a key id', () => {
  const oldKey = randomBytes(32);
  const newKey = randomBytes(32);

  it('writes v2.<key id>.<iv>.<tag>.<ciphertext>, the key id a digest that is not the key', () => {
    const stored = encryptSecret(new SecretsKeyring(newKey, [oldKey]), 'pa$$ w0rd');
    const parts = stored.split('.');
    expect(parts).toHaveLength(5);
    expect(parts[0]).toBe('v2');
    expect(parts[1]).toBe(secretsKeyId(newKey));
    expect(parts[1]).toMatch(/^[A-Za-z0-9_-]{8}$/);
    expect(stored).not.toContain(newKey.toString('base64url').slice(0, 8));
    expect(secretKeyIdOf(stored)).toBe(secretsKeyId(newKey));
    expect(decryptSecret(newKey, stored)).toBe('pa$$ w0rd');
  });

  it('accepts the current and previous keys during a rotation, and encrypts with the current one only', () => {
    const before = encryptSecret(oldKey, 'db password');
    const rotating = new SecretsKeyring(newKey, [oldKey]);
    expect(decryptSecret(rotating, before)).toBe('db password');
    expect(isCurrentSecret(rotating, before)).toBe(false);
    const after = encryptSecret(rotating, decryptSecret(rotating, before));
    expect(isCurrentSecret(rotating, after)).toBe(true);
    // Once rotated, the previous key can go.
    expect(decryptSecret(new SecretsKeyring(newKey), after)).toBe('db password');
  });

  it('still decrypts the v1 rows written before key ids, with any configured key', () => {
    const v1 = encryptV1(oldKey, 'legacy');
    expect(decryptSecret(oldKey, v1)).toBe('legacy');
    expect(decryptSecret(new SecretsKeyring(newKey, [oldKey]), v1)).toBe('legacy');
    expect(secretKeyIdOf(v1)).toBeNull();
    expect(isCurrentSecret(new SecretsKeyring(oldKey), v1)).toBe(false);
    expect(() => decryptSecret(newKey, v1)).toThrow(/v1 secret .* that no configured key decrypts/);
  });

  it('fails clearly when no key has the id: names the ids, never a key', () => {
    const stored = encryptSecret(oldKey, 'x');
    let error: unknown;
    try {
      decryptSecret(new SecretsKeyring(newKey), stored);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(SecretsKeyMissingError);
    const message = (error as Error).message;
    expect(message).toContain(secretsKeyId(oldKey));
    expect(message).toContain(secretsKeyId(newKey));
    expect(message).toContain('SECRETS_KEY_PREVIOUS');
    for (const key of [oldKey, newKey]) {
      for (const encoding of ['hex', 'base64', 'base64url'] as const) expect(message).not.toContain(key.toString(encoding));
    }
  });

  it('refuses a changed key id, a changed byte and a truncated tag', () => {
    const keyring = new SecretsKeyring(newKey, [oldKey]);
    const stored = encryptSecret(oldKey, 'secret');
    const parts = stored.split('.');
    // Claiming another key of the ring: the key id is authenticated with the ciphertext.
    expect(() => decryptSecret(keyring, [parts[0], secretsKeyId(newKey), ...parts.slice(2)].join('.'))).toThrow();
    const body = Buffer.from(parts[4]!, 'base64url');
    body[0] = body[0]! ^ 1;
    expect(() => decryptSecret(keyring, [...parts.slice(0, 4), body.toString('base64url')].join('.'))).toThrow();
    const shortTag = Buffer.from(parts[3]!, 'base64url').subarray(0, 4).toString('base64url');
    expect(() => decryptSecret(keyring, [...parts.slice(0, 3), shortTag, parts[4]].join('.'))).toThrow();
    expect(() => decryptSecret(keyring, 'v3.a.b.c.d')).toThrow(/not an encrypted secret/);
  });
});

describe('randomSecret', () => {
  it.each([
    ['alnum', /^[A-Za-z0-9]+$/, 62],
    ['hex', /^[0-9a-f]+$/, 16],
    ['base64url', /^[A-Za-z0-9_-]+$/, 64],
    ['alpha', /^[A-Za-z]+$/, 52],
    ['digits', /^[0-9]+$/, 10],
    ['symbols', /^[A-Za-z0-9!#%+\-.:=?@^_~]+$/, 75],
  ] as const)('draws %s secrets up to 4,096 characters from their alphabet only', (alphabet, pattern, size) => {
    const secret = randomSecret(4096, alphabet);
    expect(secret).toHaveLength(4096);
    expect(secret).toMatch(pattern);
    // Every character of the alphabet turns up in 4,096 draws (uniform, no character left out).
    expect(new Set(secret).size).toBe(size);
  });
});
