/**
 * The DNS contract every support operation uses (add/remove a site, change a
 * hostname, downgrade, removal). The records of a site are derived from the
 * catalog: an A (IPv4) or AAAA (IPv6) record for each IP serving the site
 * (`install_site_ips` -> `server_ips`; paid: one per dispatcher, the seed's
 * round robin). A name is *managed* when its zone exists in PowerDNS (the
 * longest zone suffix of the name); otherwise the operation reports the
 * records the customer must set at their own DNS provider.
 *
 * Implemented by `PowerDnsSiteDns` (libs/dns) over PowerDNS's HTTP API, each
 * RRset replaced atomically (PATCH changetype REPLACE / DELETE). Nothing here
 * ever touches a record type other than A/AAAA, or a name the caller did not
 * give.
 */

export type DnsRecordType = 'A' | 'AAAA';

export interface DnsRecord {
  type: DnsRecordType;
  content: string;
}

/** One name's records before and after an operation (or its dry run). */
export interface DnsChange {
  /** Lower-case, no trailing dot. */
  name: string;
  /** The managed zone holding the name (no trailing dot), null when the company does not manage it. */
  zone: string | null;
  managed: boolean;
  /** What the zone serves now (managed names; [] for an unmanaged one: unknown). */
  before: DnsRecord[];
  /** What it must serve (the customer must set these themselves when unmanaged; [] = removed). */
  after: DnsRecord[];
}

export interface DnsLog {
  log(line: string): void;
}

export abstract class SiteDns {
  /** What `publish` would change, without changing anything (dry-run plans). */
  abstract planPublish(installId: number): Promise<DnsChange[]>;

  /**
   * Makes every managed zone serve the install's sites' names (hostname and
   * secure hostname) at the IPs serving them now, per the catalog. Idempotent.
   * Unmanaged names are returned with the records to set, and logged.
   */
  abstract publish(installId: number, io?: DnsLog): Promise<DnsChange[]>;

  /** What `unpublish` would change. */
  abstract planUnpublish(names: readonly string[]): Promise<DnsChange[]>;

  /**
   * Deletes the A/AAAA RRsets of these names from their managed zones (the
   * names an operation releases: an old hostname, a removed site or
   * install). Idempotent; unmanaged names are reported, never touched.
   */
  abstract unpublish(names: readonly string[], io?: DnsLog): Promise<DnsChange[]>;

  /** The A/AAAA records a managed zone serves for the name now; null when the name is not managed. */
  abstract lookup(name: string): Promise<DnsRecord[] | null>;
}
