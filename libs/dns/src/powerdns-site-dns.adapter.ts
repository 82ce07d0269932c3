import { dnsName, sameRecords, sortRecords, zoneOfName } from './dns-records.js';
import type { PowerDnsClient, PowerDnsRrset } from './powerdns.client.js';
import { SiteRecordsRepository } from './site-records.repository.js';
import { SiteDns, type DnsChange, type DnsLog, type DnsRecord, type DnsRecordType } from './site-dns.js';
import { unmanagedLine } from './unmanaged-site-dns.adapter.js';

const TYPES: readonly DnsRecordType[] = ['A', 'AAAA'];

interface Zone {
  /** Lower case, no trailing dot. */
  name: string;
  /** PowerDNS's zone id (for the URL). */
  id: string;
}

export interface PowerDnsSiteDnsOptions {
  ttl: number;
  /** How long the zone list is trusted (a zone added in PowerDNS is seen after at most this). */
  zoneCacheMs?: number;
}

/**
 * SiteDns over PowerDNS's HTTP API. A name is managed when the longest zone
 * suffix of it exists in PowerDNS; per zone, one PATCH replaces or deletes
 * the A and AAAA RRsets that differ (each RRset whole, all of the zone's in
 * one transaction). No other type and no other name is ever sent.
 */
export class PowerDnsSiteDns extends SiteDns {
  private zoneCache: { at: number; zones: Promise<Zone[]> } | null = null;
  private readonly zoneCacheMs: number;

  constructor(
    private readonly client: PowerDnsClient,
    private readonly records: SiteRecordsRepository,
    private readonly options: PowerDnsSiteDnsOptions,
  ) {
    super();
    this.zoneCacheMs = options.zoneCacheMs ?? 5_000;
  }

  async planPublish(installId: number): Promise<DnsChange[]> {
    return this.plan(await this.records.forInstall(installId));
  }

  async publish(installId: number, io?: DnsLog): Promise<DnsChange[]> {
    return this.apply(await this.planPublish(installId), io);
  }

  async planUnpublish(names: readonly string[]): Promise<DnsChange[]> {
    return this.plan(new Map(names.map((n) => [dnsName(n), [] as DnsRecord[]])));
  }

  async unpublish(names: readonly string[], io?: DnsLog): Promise<DnsChange[]> {
    return this.apply(await this.planUnpublish(names), io);
  }

  async lookup(name: string): Promise<DnsRecord[] | null> {
    const normalized = dnsName(name);
    const zone = (await this.zonesOf([normalized])).get(normalized);
    return zone ? this.served(zone, normalized) : null;
  }

  /** Forgets the cached zone list (a zone was just added or removed). */
  forgetZones(): void {
    this.zoneCache = null;
  }

  private async plan(wanted: Map<string, DnsRecord[]>): Promise<DnsChange[]> {
    const zoneOf = await this.zonesOf([...wanted.keys()]);
    const changes: DnsChange[] = [];
    for (const [name, after] of wanted) {
      const zone = zoneOf.get(name);
      if (!zone) {
        changes.push({ name, zone: null, managed: false, before: [], after });
        continue;
      }
      changes.push({ name, zone: zone.name, managed: true, before: await this.served(zone, name), after });
    }
    return changes;
  }

  /**
   * Each name's zone (the longest suffix PowerDNS has). The cached list is
   * trusted for names it places in a zone; when it places one nowhere, the
   * list is asked for again (a zone created a moment ago is managed at once).
   */
  private async zonesOf(names: readonly string[]): Promise<Map<string, Zone>> {
    const place = (zones: Zone[]) => {
      const found = new Map<string, Zone>();
      for (const name of names) {
        const zone = zoneOfName(name, zones.map((z) => z.name));
        if (zone !== null) found.set(name, zones.find((z) => z.name === zone)!);
      }
      return found;
    };
    const cached = this.zoneCache !== null;
    const found = place(await this.zones());
    if (found.size === names.length || !cached) return found;
    this.forgetZones();
    return place(await this.zones());
  }

  private async apply(changes: DnsChange[], io?: DnsLog): Promise<DnsChange[]> {
    const zones = await this.zones();
    const byZone = new Map<string, PowerDnsRrset[]>();
    for (const change of changes) {
      if (!change.managed || change.zone === null) {
        io?.log(unmanagedLine(change));
        continue;
      }
      const rrsets = this.rrsetsFor(change);
      io?.log(`dns: ${change.name} (zone ${change.zone}): ${describe(change.after)}${rrsets.length ? ` (was ${describe(change.before)})` : ', unchanged'}`);
      if (rrsets.length) byZone.set(change.zone, [...(byZone.get(change.zone) ?? []), ...rrsets]);
    }
    for (const [zoneName, rrsets] of byZone) {
      // The id PowerDNS listed for it (the name with its dot, escaped where needed).
      const zoneId = zones.find((z) => z.name === zoneName)?.id ?? `${zoneName}.`;
      try {
        await this.client.patch(zoneId, rrsets);
      } catch (error) {
        // The zone may have gone away (or come): ask again next time.
        this.forgetZones();
        throw error;
      }
    }
    return changes;
  }

  /** The A/AAAA RRsets of one name that differ: replaced whole, or deleted when nothing must be served. */
  private rrsetsFor(change: DnsChange): PowerDnsRrset[] {
    const rrsets: PowerDnsRrset[] = [];
    for (const type of TYPES) {
      const before = change.before.filter((r) => r.type === type);
      const after = change.after.filter((r) => r.type === type);
      if (sameRecords(before, after)) continue;
      rrsets.push(
        after.length === 0
          ? { name: `${change.name}.`, type, changetype: 'DELETE', records: [] }
          : { name: `${change.name}.`, type, ttl: this.options.ttl, changetype: 'REPLACE', records: after.map((r) => ({ content: r.content, disabled: false })) },
      );
    }
    return rrsets;
  }

  /** The A/AAAA records the zone serves for the name now (disabled ones are not served). */
  private async served(zone: Zone, name: string): Promise<DnsRecord[]> {
    const rrsets = await this.client.rrsets(zone.id, name);
    const records: DnsRecord[] = [];
    for (const rrset of rrsets) {
      if (!TYPES.includes(rrset.type as DnsRecordType)) continue;
      for (const record of rrset.records) if (!record.disabled) records.push({ type: rrset.type as DnsRecordType, content: record.content });
    }
    return sortRecords(records);
  }

  private zones(): Promise<Zone[]> {
    const now = Date.now();
    if (this.zoneCache && now - this.zoneCache.at < this.zoneCacheMs) return this.zoneCache.zones;
    const zones = this.client.zones().then((list) => list.map((z) => ({ id: z.id, name: z.name.toLowerCase().replace(/\.$/, '') })));
    this.zoneCache = { at: now, zones };
    // A failed listing is not cached.
    zones.catch(() => {
      if (this.zoneCache?.zones === zones) this.zoneCache = null;
    });
    return zones;
  }
}

function describe(records: readonly DnsRecord[]): string {
  return records.length ? records.map((r) => `${r.type} ${r.content}`).join(', ') : 'none';
}
