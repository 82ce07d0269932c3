import { IsOptional } from 'class-validator';
import { ValidationFailedError } from './domain-error.js';
import { hostnameProblem, IsHostname, isHostname, normalizeHostname } from './hostname.js';
import { validateDto } from './validation.js';

describe('the hostname rule', () => {
  it('accepts lower-case LDH names of two labels or more, and punycode', () => {
    for (const name of ['shop.example.com', 'www.bio-ex.co.uk', 'a.b', '0.example.com', 'xn--bcher-kva.de', 'shop.xn--p1ai', `${'a'.repeat(63)}.com`]) {
      expect([name, hostnameProblem(name)]).toEqual([name, null]);
    }
    const long = `${Array.from({ length: 4 }, () => 'a'.repeat(61)).join('.')}.co`; // 249 characters
    expect(isHostname(long)).toBe(true);
  });

  it('refuses what nginx or a registry would refuse, saying why', () => {
    const cases: [string, RegExp][] = [
      ['bücher.de', /punycode \(xn--bcher-kva\.de\)/],
      ['shop.exämple.com', /punycode/],
      ['ＳＨＯＰ.example.com', /punycode/],
      ['localhost', /needs at least two labels/],
      ['shop..example.com', /empty label/],
      ['.shop.example.com', /empty label/],
      [`${'a'.repeat(64)}.com`, /longer than 63/],
      [`${Array.from({ length: 5 }, () => 'a'.repeat(50)).join('.')}.com`, /longer than 253/],
      ['-shop.example.com', /hyphen/],
      ['shop-.example.com', /hyphen/],
      ['ab--cd.example.com', /positions 3-4/],
      ['xn--zz.example.com', /does not decode/],
      ['shop_1.example.com', /characters other than/],
      ['Shop.example.com', /characters other than/],
      ['shop example.com', /characters other than/],
      ['192.168.0.1', /all-digit/],
      ['', /is empty/],
    ];
    for (const [name, why] of cases) expect([name, hostnameProblem(name)]).toEqual([name, expect.stringMatching(why)]);
  });

  it('allows a single label only when asked (server names)', () => {
    expect(isHostname('localhost', { singleLabel: true })).toBe(true);
    expect(isHostname('local host', { singleLabel: true })).toBe(false);
  });

  it('normalizes case and the trailing dot, nothing else', () => {
    expect(normalizeHostname('Shop.Example.COM.')).toBe('shop.example.com');
    expect(normalizeHostname('shop.example.com..')).toBe('shop.example.com.');
    expect(normalizeHostname(42)).toBe(42);
  });
});

class Site {
  @IsHostname() hostname: string;
  @IsOptional() @IsHostname() secureHostname?: string;
}

describe('IsHostname', () => {
  it('stores the normalized name', async () => {
    expect(await validateDto(Site, { hostname: 'Shop.Example.com.', secureHostname: 'SECURE.example.com' })).toMatchObject({
      hostname: 'shop.example.com',
      secureHostname: 'secure.example.com',
    });
  });

  it('names the field and the problem', async () => {
    const error = await validateDto(Site, { hostname: 'bücher.de', secureHostname: 7 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ValidationFailedError);
    expect((error as ValidationFailedError).fields).toEqual([
      { field: 'hostname', problems: ['hostname must be a fully qualified hostname: is not ASCII: write an internationalized name as punycode (xn--bcher-kva.de)'] },
      { field: 'secureHostname', problems: ['secureHostname must be a fully qualified hostname: is not a string'] },
    ]);
  });
});
