import { generateToken, hashToken, isWellFormedToken, parseScopes, scopeAllows, tokenDisplayPrefix } from './token-codec.js';

describe('token codec', () => {
  it('makes unique, well-formed tokens with a recognisable prefix', () => {
    const tokens = new Set(Array.from({ length: 200 }, generateToken));
    expect(tokens.size).toBe(200);
    for (const token of tokens) {
      expect(isWellFormedToken(token)).toBe(true);
      expect(token.startsWith('spe_')).toBe(true);
    }
  });

  it('stores only a SHA-256 of the token', () => {
    const token = generateToken();
    expect(hashToken(token)).toMatch(/^[0-9a-f]{64}$/);
    expect(hashToken(token)).not.toContain(token.slice(4, 20));
    expect(tokenDisplayPrefix(token)).toHaveLength(12);
  });

  it('rejects malformed bearer values before any lookup', () => {
    for (const bad of ['', 'spe_', 'spe_short', `xyz_${'a'.repeat(43)}`, `spe_${'a'.repeat(42)};`, `spe_${'a'.repeat(44)}`]) {
      expect(isWellFormedToken(bad)).toBe(false);
    }
  });

  it('lets admin do everything and other scopes only their own', () => {
    expect(scopeAllows(['admin'], 'orders')).toBe(true);
    expect(scopeAllows(['admin'], 'support')).toBe(true);
    expect(scopeAllows(['orders'], 'orders')).toBe(true);
    expect(scopeAllows(['orders'], 'support')).toBe(false);
    expect(scopeAllows(['support'], 'admin')).toBe(false);
    expect(scopeAllows([], 'orders')).toBe(false);
  });

  it('parses scope lists strictly', () => {
    expect(parseScopes(['orders', ' Support ', 'orders'])).toEqual(['orders', 'support']);
    expect(parseScopes(['orders', 'root'])).toBeNull();
    expect(parseScopes([])).toBeNull();
    expect(parseScopes([' '])).toBeNull();
  });
});
