import { posix } from 'node:path';
import { Injectable } from '@nestjs/common';
import { DataSource, In } from 'typeorm';
import { Install, InstallServer, InstallSite, InstallSiteIp, Server, ServerIp, SharedCodeGroup } from '@app/catalog';
import { parseManifest, type CodebaseManifest } from '@app/codebases';
import type { DispatcherInput, InstallInput, RewriteInput } from './render.js';

/** Where every shop logs its requests (the format carries the host, for site accounting). */
export const SHOPS_ACCESS_LOG = '/var/log/nginx/shops-access.log';

/** The port php-fpm listens on, on each handler's private IP (loopback for a server without one). */
export const PHP_FPM_PORT = 9000;

/** The statuses whose sites a dispatcher serves: being built (the saga waits for its vhost) and live. */
const SERVED = ['building', 'live'] as const;

/** The directory nginx reads shop files from on a dispatcher: the live generation, through a symlink. */
export const currentDir = (server: Pick<Server, 'nginxConfDir'>) => posix.join(server.nginxConfDir, 'current');

/**
 * Reads the catalog into the renderer's input for one dispatcher: every
 * install it serves (building or live, with a ready code group), with its
 * sites' IPs on that dispatcher, certificates, document root from its
 * group's manifest, PHP backends (its servers' php-fpm, weighted; a server
 * that is down is marked down) and rewrite rules. A handful of queries,
 * whatever the number of installs.
 */
@Injectable()
export class DispatcherInputLoader {
  /** Parsed manifests by group, kept while the group's manifest text is the same. */
  private readonly manifests = new Map<number, { text: string; parsed: Promise<CodebaseManifest | null> }>();

  constructor(private readonly dataSource: DataSource) {}

  private manifest(group: SharedCodeGroup | undefined): Promise<CodebaseManifest | null> {
    if (!group?.manifest) return Promise.resolve(null);
    const text = JSON.stringify(group.manifest);
    const known = this.manifests.get(group.id);
    if (known?.text === text) return known.parsed;
    const parsed = parseManifest(group.manifest).catch(() => null);
    if (this.manifests.size > 1000) this.manifests.clear();
    this.manifests.set(group.id, { text, parsed });
    return parsed;
  }

  async load(server: Server, onlyInstallId?: number): Promise<DispatcherInput> {
    const m = this.dataSource.manager;
    const installs = await m
      .createQueryBuilder(Install, 'i')
      .innerJoin(InstallServer, 'mine', 'mine.installId = i.id AND mine.serverId = :serverId', { serverId: server.id })
      .where('i.status IN (:...served)', { served: SERVED })
      .andWhere('i.sharedCodeGroupId IS NOT NULL')
      .andWhere(onlyInstallId === undefined ? '1 = 1' : 'i.id = :only', { only: onlyInstallId })
      .orderBy('i.id', 'ASC')
      .getMany();
    if (installs.length === 0) return { confDir: currentDir(server), accessLog: SHOPS_ACCESS_LOG, installs: [] };

    const scope = <T extends object>(alias: string, entity: new () => T) =>
      m
        .createQueryBuilder(entity, alias)
        .innerJoin(InstallServer, 'mine', `mine.installId = ${alias}.installId AND mine.serverId = :serverId`, { serverId: server.id })
        .andWhere(onlyInstallId === undefined ? '1 = 1' : `${alias}.installId = :only`, { only: onlyInstallId });
    const groupIds = [...new Set(installs.map((i) => i.sharedCodeGroupId!))];
    const [memberships, sites, siteIps, groups] = await Promise.all([
      scope('isv', InstallServer).getMany(),
      scope('s', InstallSite).orderBy('s.id', 'ASC').getMany(),
      m
        .createQueryBuilder(InstallSiteIp, 'h')
        .innerJoin(ServerIp, 'ip', 'ip.id = h.serverIpId')
        .select(['h.installSiteId AS siteId', 'ip.ip AS ip'])
        .where('h.serverId = :serverId', { serverId: server.id })
        .getRawMany<{ siteId: number; ip: string }>(),
      m.find(SharedCodeGroup, { where: { id: In(groupIds) } }),
    ]);
    const servers = await m.find(Server, { where: { id: In([...new Set(memberships.map((r) => r.serverId))]) } });
    const serverById = new Map(servers.map((s) => [s.id, s]));
    const manifestOf = (groupId: number) => this.manifest(groups.find((g) => g.id === groupId));
    const membersOf = groupBy(memberships, (r) => r.installId);
    const sitesOf = groupBy(sites, (s) => s.installId);
    const ipsOf = groupBy(siteIps, (r) => Number(r.siteId));

    const inputs: InstallInput[] = [];
    for (const install of installs) {
      const manifest = await manifestOf(install.sharedCodeGroupId!);
      if (!manifest) continue;
      inputs.push({
        id: install.id,
        fsName: install.fsName,
        root: posix.join(server.homeRoot, install.fsName, manifest.web.documentRoot),
        phpEntryPoints: manifest.web.phpEntryPoints,
        deny: manifest.web.deny ?? [],
        frontController: manifest.web.frontController ?? null,
        backends: backendsOf(membersOf.get(install.id) ?? [], serverById),
        rewrites: rewritesOf(install.customRewrites),
        sites: (sitesOf.get(install.id) ?? []).map((site) => ({
          hostname: site.hostname,
          secureHostname: site.secureHostname,
          ips: (ipsOf.get(site.id) ?? []).map((r) => r.ip),
          cert: site.sslPemPath && site.sslKeyPath ? { pem: site.sslPemPath, key: site.sslKeyPath } : null,
        })),
      });
    }
    return { confDir: currentDir(server), accessLog: SHOPS_ACCESS_LOG, installs: inputs };
  }
}

/** php-fpm on each of the install's servers, with the row's weight; a server that is down is out of rotation. */
function backendsOf(rows: InstallServer[], servers: Map<number, Server>): InstallInput['backends'] {
  const backends = new Map<string, number>();
  for (const row of rows) {
    const s = servers.get(row.serverId);
    if (!s) continue;
    const ip = s.privateIp ?? '127.0.0.1';
    const address = `${ip.includes(':') ? `[${ip}]` : ip}:${PHP_FPM_PORT}`;
    const weight = s.state === 'down' ? 0 : row.weight;
    backends.set(address, Math.max(backends.get(address) ?? 0, weight));
  }
  return [...backends].map(([address, weight]) => ({ address, weight }));
}

/**
 * The install's stored rewrite rules, as the renderer's structure. Anything
 * that is not one is passed on as a rule the renderer refuses, so the
 * install is named and quarantined instead of silently losing a rule.
 */
function rewritesOf(stored: unknown[] | null): RewriteInput[] {
  return (stored ?? []).map((rule) => {
    const r = (typeof rule === 'object' && rule !== null ? rule : {}) as Record<string, unknown>;
    return {
      match: r.match as RewriteInput['match'],
      from: typeof r.from === 'string' ? r.from : String(r.from),
      to: typeof r.to === 'string' ? r.to : String(r.to),
      code: (r.code === 301 || r.code === 302 ? r.code : Number(r.code)) as 301 | 302,
    };
  });
}

function groupBy<T, K>(rows: readonly T[], key: (t: T) => K): Map<K, T[]> {
  const map = new Map<K, T[]>();
  for (const row of rows) {
    const k = key(row);
    const list = map.get(k);
    if (list) list.push(row);
    else map.set(k, [row]);
  }
  return map;
}
