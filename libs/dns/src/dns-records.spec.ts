import { canonicalAddress, dnsName, recordsOfSites, sameRecords, zoneOfName } from './dns-records.js';

describe('dns records (pure)', () => {
  it('computes one A/AAAA per IP for hostname and secure hostname, deduplicated and sorted', () => {
    const records = recordsOfSites([
      { hostname: 'www.shop.example', secureHostname: 'www.shop.example', ips: ['10.0.0.2', '10.0.0.1', '2001:DB8:0:0::1'] },
      { hostname: 'Shop.Example.', secureHostname: 'secure.shop.example', ips: ['10.0.0.9'] },
    ]);
    expect([...records]).toEqual([
      ['www.shop.example', [{ type: 'A', content: '10.0.0.1' }, { type: 'A', content: '10.0.0.2' }, { type: 'AAAA', content: '2001:db8::1' }]],
      ['shop.example', [{ type: 'A', content: '10.0.0.9' }]],
      ['secure.shop.example', [{ type: 'A', content: '10.0.0.9' }]],
    ]);
  });

  it('picks the longest zone suffix, on label boundaries', () => {
    const zones = ['example.com', 'sub.example.com', 'ample.com'];
    expect(zoneOfName('a.sub.example.com', zones)).toBe('sub.example.com');
    expect(zoneOfName('example.com', zones)).toBe('example.com');
    expect(zoneOfName('www.badexample.com', zones)).toBeNull();
    expect(zoneOfName('www.example.org', zones)).toBeNull();
  });

  it('validates names before they reach a request', () => {
    expect(dnsName('WWW.Example.COM.')).toBe('www.example.com');
    for (const bad of ['', 'localhost', 'a..b.com', 'a/b.com', 'x.com/../zones', '*.example.com', 'ex ample.com']) {
      expect(() => dnsName(bad)).toThrow(expect.objectContaining({ code: 'DNS_NAME_INVALID' }));
    }
  });

  it('compares record sets regardless of order; canonicalizes IPv6', () => {
    expect(sameRecords([{ type: 'A', content: '1.1.1.1' }, { type: 'A', content: '1.1.1.2' }], [{ type: 'A', content: '1.1.1.2' }, { type: 'A', content: '1.1.1.1' }])).toBe(true);
    expect(sameRecords([{ type: 'A', content: '1.1.1.1' }], [])).toBe(false);
    expect(canonicalAddress('2001:0DB8:0000::0001')).toBe('2001:db8::1');
  });
});
