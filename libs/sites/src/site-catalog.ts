import { Injectable } from '@nestjs/common';
import { DataSource, In, type EntityManager } from 'typeorm';
import { Install, InstallServer, InstallSite, InstallSiteIp, Job, Server, ServerIp, SiteName, type License } from '@app/catalog';
import { NotFoundError } from '@app/common';
import { siteErrors } from './sites.errors.js';
import type { PlannedIpView } from './dto/site-ops.dto.js';
import { SITE_OPERATION_KINDS } from './site-job-kinds.js';

/** Free IPs an allocation picks from at random, so concurrent requests seldom want the same one. */
const IP_CHOICES = 32;
const OPEN_JOB = ['ready', 'blocked', 'running'] as const;

/** One install_site_ips row, as a snapshot carries it (to put it back). */
export interface SiteIpRow {
  serverIpId: number;
  serverId: number;
  exclusive: boolean;
}

/** A site as it was before an operation: enough to put it back exactly. */
export interface SiteSnapshot {
  id: number;
  hostname: string;
  secureHostname: string | null;
  relUrl: string;
  secureRelUrl: string;
  sslPemPath: string | null;
  sslKeyPath: string | null;
  certNotAfter: string | null;
  certSource: InstallSite['certSource'];
  certSha256: string | null;
  acmeRenew: boolean;
  names: string[];
  ips: SiteIpRow[];
}

/**
 * The catalog side of the site operations: an install and a site looked
 * up (and locked) the way every operation refuses, names claimed and
 * released in site_names (its unique index settles races), IPs chosen as
 * the order's prepare chooses them, and snapshots to put a site back.
 */
@Injectable()
export class SiteCatalog {
  constructor(private readonly dataSource: DataSource) {}

  get sqlite(): boolean {
    return this.dataSource.options.type === 'better-sqlite3';
  }

  /** The install (locked for the transaction on MySQL), 404 when unknown. */
  async install(m: EntityManager, installId: number, options: { lock?: boolean } = {}): Promise<Install> {
    const install = await m.findOne(Install, { where: { id: installId }, ...(options.lock && !this.sqlite ? { lock: { mode: 'pessimistic_write' as const } } : {}) });
    if (!install) throw new NotFoundError('install', installId);
    return install;
  }

  async site(m: EntityManager, install: Install, siteId: number): Promise<InstallSite> {
    const site = await m.findOneBy(InstallSite, { id: siteId, installId: install.id });
    if (!site) throw siteErrors.siteNotFound(install.id, siteId);
    return site;
  }

  /** A support operation (or a codebase change) already queued or running on the install: refused, not stacked. */
  async refuseOpenOperation(m: EntityManager, install: Install): Promise<void> {
    const open = await m.findOne(Job, { where: { resourceKey: `install:${install.id}`, state: In([...OPEN_JOB]), kind: In([...SITE_OPERATION_KINDS]) }, order: { id: 'ASC' } });
    if (open) throw siteErrors.operationRunning(install, open.id, open.kind);
  }

  /** Names another install claims (or this one, on another site), refused with 409. */
  async refuseTaken(m: EntityManager, names: readonly string[], mine: { installId: number; siteId: number | null }): Promise<void> {
    if (names.length === 0) return;
    const claimed = await m.find(SiteName, { where: { name: In([...names]) } });
    const taken = claimed.filter((c) => c.installId !== mine.installId || c.installSiteId !== mine.siteId);
    if (taken.length > 0) throw siteErrors.hostnameTaken(taken.map((c) => c.name));
  }

  /** Claims names for a site (already its own: nothing). A name claimed meanwhile fails on the unique index. */
  async claim(m: EntityManager, installId: number, siteId: number, names: readonly string[]): Promise<void> {
    for (const name of names) {
      const row = await m.findOneBy(SiteName, { name });
      if (row && row.installSiteId === siteId) continue;
      await m.insert(SiteName, { installId, installSiteId: siteId, name });
    }
  }

  /** The install's dispatchers that serve its sites (master and replicas; not cloud handlers), in server order. */
  async dispatchers(m: EntityManager, installId: number): Promise<Server[]> {
    const rows = await m.find(InstallServer, { where: { installId } });
    const ids = rows.filter((r) => r.role !== 'cloud').map((r) => r.serverId);
    const servers = ids.length ? await m.find(Server, { where: { id: In(ids) } }) : [];
    return servers.filter((s) => s.roles.includes('dispatcher')).sort((a, b) => a.id - b.id);
  }

  /**
   * IPs for a new site as an order's prepare chooses them: paid, a free
   * dedicated IP on every dispatcher of the install; free, each
   * dispatcher's shared IP serving the fewest sites. Chosen, not taken: the
   * insert of install_site_ips takes them (its unique exclusive_ip_id
   * settles races).
   */
  async chooseIps(m: EntityManager, license: License, servers: readonly Server[], hostname: string): Promise<(SiteIpRow & { ip: string; kind: string; server: string })[]> {
    const out: (SiteIpRow & { ip: string; kind: string; server: string })[] = [];
    for (const server of servers) {
      const ip = license === 'paid' ? await this.freeDedicatedIp(m, server, hostname) : await this.sharedIp(m, server, hostname);
      out.push({ serverIpId: ip.id, serverId: server.id, exclusive: ip.kind !== 'shared', ip: ip.ip, kind: ip.kind, server: server.hostname });
    }
    return out;
  }

  /** install_site_ips rows for a site (exclusive ones hold their IP: a race for one fails on the unique index). */
  async attachIps(m: EntityManager, siteId: number, rows: readonly SiteIpRow[]): Promise<void> {
    for (const row of rows) {
      await m.insert(InstallSiteIp, { installSiteId: siteId, serverIpId: row.serverIpId, serverId: row.serverId, exclusiveIpId: row.exclusive ? row.serverIpId : null });
    }
  }

  async ipRows(m: EntityManager, siteIds: readonly number[]): Promise<(InstallSiteIp & { ip: string; kind: string })[]> {
    if (siteIds.length === 0) return [];
    const rows = await m.find(InstallSiteIp, { where: { installSiteId: In([...siteIds]) }, order: { id: 'ASC' } });
    const ips = rows.length ? await m.find(ServerIp, { where: { id: In(rows.map((r) => r.serverIpId)) } }) : [];
    return rows.map((r) => {
      const ip = ips.find((i) => i.id === r.serverIpId)!;
      return Object.assign(r, { ip: ip.ip, kind: ip.kind });
    });
  }

  /** IPs as a plan shows them. */
  async describeIps(m: EntityManager, rows: readonly { serverIpId: number; serverId: number }[]): Promise<PlannedIpView[]> {
    if (rows.length === 0) return [];
    const ips = await m.find(ServerIp, { where: { id: In(rows.map((r) => r.serverIpId)) } });
    const servers = await m.find(Server, { where: { id: In(rows.map((r) => r.serverId)) } });
    return rows.map((r) => {
      const ip = ips.find((i) => i.id === r.serverIpId);
      return { serverIpId: r.serverIpId, ip: ip?.ip ?? '?', kind: ip?.kind ?? '?', server: servers.find((s) => s.id === r.serverId)?.hostname ?? String(r.serverId) };
    });
  }

  async snapshot(m: EntityManager, site: InstallSite): Promise<SiteSnapshot> {
    const names = (await m.find(SiteName, { where: { installSiteId: site.id }, order: { id: 'ASC' } })).map((n) => n.name);
    const ips = (await m.find(InstallSiteIp, { where: { installSiteId: site.id }, order: { id: 'ASC' } })).map((r) => ({ serverIpId: r.serverIpId, serverId: r.serverId, exclusive: r.exclusiveIpId !== null }));
    return {
      id: site.id,
      hostname: site.hostname,
      secureHostname: site.secureHostname,
      relUrl: site.relUrl,
      secureRelUrl: site.secureRelUrl,
      sslPemPath: site.sslPemPath,
      sslKeyPath: site.sslKeyPath,
      certNotAfter: site.certNotAfter ? new Date(site.certNotAfter).toISOString() : null,
      certSource: site.certSource,
      certSha256: site.certSha256,
      acmeRenew: site.acmeRenew,
      names,
      ips,
    };
  }

  /** The dedicated IP given back (a removed site's, or a downgrade's) is taken by someone else: another free one of that server instead. */
  async freeDedicatedIp(m: EntityManager, server: Server, hostname: string): Promise<ServerIp> {
    const free = await m
      .createQueryBuilder(ServerIp, 'ip')
      .leftJoin(InstallSiteIp, 'held', 'held.exclusiveIpId = ip.id')
      .where('ip.serverId = :server AND ip.kind = :kind AND held.id IS NULL', { server: server.id, kind: 'dedicated' })
      .orderBy('ip.id', 'ASC')
      .limit(IP_CHOICES)
      .getMany();
    const ip = free[Math.floor(Math.random() * free.length)];
    if (!ip) throw siteErrors.ipPoolExhausted(server.hostname, 'dedicated', hostname);
    return ip;
  }

  /** Whether an exclusive IP is held by a site other than `siteId`. */
  async heldElsewhere(m: EntityManager, serverIpId: number, siteId: number | null): Promise<boolean> {
    const row = await m.findOneBy(InstallSiteIp, { exclusiveIpId: serverIpId });
    return row !== null && row.installSiteId !== siteId;
  }

  private async sharedIp(m: EntityManager, server: Server, hostname: string): Promise<ServerIp> {
    const row = await m
      .createQueryBuilder(ServerIp, 'ip')
      .leftJoin(InstallSiteIp, 'used', 'used.serverIpId = ip.id')
      .select('ip.id', 'id')
      .addSelect('COUNT(used.id)', 'n')
      .where('ip.serverId = :server AND ip.kind = :kind', { server: server.id, kind: 'shared' })
      .groupBy('ip.id')
      .orderBy('n', 'ASC')
      .addOrderBy('ip.id', 'ASC')
      .limit(1)
      .getRawOne<{ id: number }>();
    if (!row) throw siteErrors.ipPoolExhausted(server.hostname, 'shared', hostname);
    return m.findOneByOrFail(ServerIp, { id: Number(row.id) });
  }
}
