import { Injectable } from '@nestjs/common';
import { dnsName } from './dns-records.js';
import { SiteRecordsRepository } from './site-records.repository.js';
import { SiteDns, type DnsChange, type DnsLog } from './site-dns.js';

/** Text for a name the company does not manage: what the customer must set. */
export function unmanagedLine(change: DnsChange): string {
  const records = change.after.map((r) => `${r.type} ${r.content}`).join(', ');
  return change.after.length
    ? `dns: ${change.name} is not in a zone we manage: the customer must set ${records} at their DNS provider`
    : `dns: ${change.name} is not in a zone we manage: the customer should remove its A/AAAA records at their DNS provider`;
}

/**
 * No PowerDNS configured (DNS_API_URL unset): every name is unmanaged. The
 * records are still computed from the catalog, for the operation to show.
 */
@Injectable()
export class UnmanagedSiteDns extends SiteDns {
  constructor(private readonly records: SiteRecordsRepository) {
    super();
  }

  async planPublish(installId: number): Promise<DnsChange[]> {
    const wanted = await this.records.forInstall(installId);
    return [...wanted].map(([name, after]) => ({ name, zone: null, managed: false, before: [], after }));
  }

  async publish(installId: number, io?: DnsLog): Promise<DnsChange[]> {
    const changes = await this.planPublish(installId);
    for (const change of changes) io?.log(unmanagedLine(change));
    return changes;
  }

  async planUnpublish(names: readonly string[]): Promise<DnsChange[]> {
    return [...new Set(names.map(dnsName))].map((name) => ({ name, zone: null, managed: false, before: [], after: [] }));
  }

  async unpublish(names: readonly string[], io?: DnsLog): Promise<DnsChange[]> {
    const changes = await this.planUnpublish(names);
    for (const change of changes) io?.log(unmanagedLine(change));
    return changes;
  }

  async lookup(name: string): Promise<null> {
    dnsName(name);
    return null;
  }
}
