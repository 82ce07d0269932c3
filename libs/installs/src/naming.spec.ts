import { dbNameFor, fsNameBase, nextFsName } from './naming.js';
import { decryptSecret, encryptSecret, randomSecret } from './secrets-cipher.js';
import { randomBytes } from 'node:crypto';

describe('install names', () => {
  it.each([
    ['www.Bio-Ex.co.uk', 'bioexcouk'],
    ['shop.example.com', 'shopexampl'],
    ['123shop.net', 's123shopne'],
    ['www2.a.io', 'aio'],
  ])('%s → %s', (hostname, base) => {
    expect(fsNameBase(hostname)).toBe(base);
    expect(fsNameBase(hostname)).toMatch(/^[a-z][a-z0-9]{0,9}$/);
  });

  it('takes the first free candidate and stays within MySQL limits', () => {
    expect(nextFsName('shop', new Set())).toBe('shop');
    expect(nextFsName('shop', new Set(['shop', 'shop1']))).toBe('shop2');
    expect(dbNameFor(nextFsName('abcdefghij', new Set(['abcdefghij'])))).toBe('shop_abcdefghij1');
  });
});

describe('secrets at rest', () => {
  const key = randomBytes(32);
  it('round-trips, with a fresh IV every time', () => {
    const a = encryptSecret(key, 'pa$$ w0rd');
    expect(a).not.toBe(encryptSecret(key, 'pa$$ w0rd'));
    expect(decryptSecret(key, a)).toBe('pa$$ w0rd');
  });
  it('refuses a wrong key or a changed ciphertext', () => {
    const stored = encryptSecret(key, 'secret');
    expect(() => decryptSecret(randomBytes(32), stored)).toThrow();
    const parts = stored.split('.');
    parts[3] = Buffer.from('tampered').toString('base64url');
    expect(() => decryptSecret(key, parts.join('.'))).toThrow();
  });
  it('generates secrets over the alphabet', () => {
    expect(randomSecret(40)).toMatch(/^[A-Za-z0-9]{40}$/);
    expect(randomSecret(16, 'hex')).toMatch(/^[0-9a-f]{16}$/);
  });
});
