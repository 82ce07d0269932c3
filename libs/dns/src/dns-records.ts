import { isIPv4, isIPv6 } from 'node:net';
import { hostnameProblem, normalizeHostname } from '@app/common';
import { DnsNameInvalidError } from './dns.errors.js';
import type { DnsRecord, DnsRecordType } from './site-dns.js';

/** One site as the catalog has it, with the addresses of the IPs serving it. */
export interface SiteAddresses {
  hostname: string;
  secureHostname: string | null;
  ips: string[];
}

/**
 * A name as the DNS module uses it: lower case, no trailing dot, following
 * the hostname rule (it reaches PowerDNS's API in a JSON body, and a
 * malformed one must fail here with a clear message, not there).
 */
export function dnsName(name: string): string {
  const normalized = normalizeHostname(name);
  const problem = typeof normalized === 'string' ? hostnameProblem(normalized) : 'is not a string';
  if (problem !== null) throw new DnsNameInvalidError(String(name), problem);
  return normalized as string;
}

/** The record type of an address, or null when it is neither IPv4 nor IPv6. */
export function recordTypeOf(ip: string): DnsRecordType | null {
  if (isIPv4(ip)) return 'A';
  if (isIPv6(ip)) return 'AAAA';
  return null;
}

/** An address as PowerDNS writes it back (IPv6 compressed, lower case), so before and after compare. */
export function canonicalAddress(ip: string): string {
  if (isIPv6(ip)) return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  return ip;
}

/**
 * The records each name of these sites must serve: hostname and secure
 * hostname, one A/AAAA per IP serving the site (a site's secure hostname is
 * often its hostname: one entry). Sorted, so plans are stable.
 */
export function recordsOfSites(sites: readonly SiteAddresses[]): Map<string, DnsRecord[]> {
  const byName = new Map<string, Map<string, DnsRecord>>();
  for (const site of sites) {
    for (const raw of [site.hostname, site.secureHostname]) {
      if (!raw) continue;
      const name = dnsName(raw);
      const records = byName.get(name) ?? new Map<string, DnsRecord>();
      byName.set(name, records);
      for (const ip of site.ips) {
        const type = recordTypeOf(ip);
        if (type === null) continue;
        const content = canonicalAddress(ip);
        records.set(`${type} ${content}`, { type, content });
      }
    }
  }
  return new Map([...byName].map(([name, records]) => [name, sortRecords([...records.values()])]));
}

export function sortRecords(records: readonly DnsRecord[]): DnsRecord[] {
  return [...records].sort((a, b) => (a.type === b.type ? a.content.localeCompare(b.content, 'en') : a.type.localeCompare(b.type)));
}

/** Whether two record lists of one name and type hold the same contents. */
export function sameRecords(a: readonly DnsRecord[], b: readonly DnsRecord[]): boolean {
  const key = (r: readonly DnsRecord[]) => sortRecords(r).map((x) => `${x.type} ${x.content}`).join(',');
  return key(a) === key(b);
}

/** The longest zone (lower case, no trailing dot) of which the name is the apex or a subdomain, or null. */
export function zoneOfName(name: string, zones: readonly string[]): string | null {
  let best: string | null = null;
  for (const zone of zones) {
    if ((name === zone || name.endsWith(`.${zone}`)) && (best === null || zone.length > best.length)) best = zone;
  }
  return best;
}
