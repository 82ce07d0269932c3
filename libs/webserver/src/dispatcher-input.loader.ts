import { posix } from 'node:path';
import { Inject, Injectable } from '@nestjs/common';
import { DataSource, In } from 'typeorm';
import { Install, InstallServer, InstallSite, InstallSiteIp, Server, ServerIp, SharedCodeGroup } from '@app/catalog';
import { parseManifest, type CodebaseManifest } from '@app/codebases';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { managesPhp, poolListensOnSocket, poolSocketOf } from './php-pools/pool-names.js';
import type { DispatcherInput, InstallInput, RewriteInput } from './render.js';

/** An install_servers row as the loader reads it. */
interface Membership {
  installId: number;
  serverId: number;
  weight: number;
  role: string;
  poolPort: number | null;
  state: string;
}

/** Where every shop logs its requests (the format carries the host, for site accounting). */
export const SHOPS_ACCESS_LOG = '/var/log/nginx/shops-access.log';

/** The port php-fpm listens on, on each handler's private IP (loopback for a server without one). */
export const PHP_FPM_PORT = 9000;

/** The statuses whose sites a dispatcher serves: being built (the saga waits for its vhost) and live. */
const SERVED = ['building', 'live'] as const;

/** The directory nginx reads shop files from on a dispatcher: the live generation, through a symlink. */
export const currentDir = (server: Pick<Server, 'nginxConfDir'>) => posix.join(server.nginxConfDir, 'current');

/**
 * Where the engine writes ACME HTTP-01 challenge files on a dispatcher, and
 * its nginx serves them from (`/.well-known/acme-challenge/` of every
 * site): beside the installs' certificate directories, world-readable
 * (nginx's workers read it; the certs root must let them through).
 */
export const acmeChallengeDirOn = (server: Pick<Server, 'certsRoot'>) => posix.join(server.certsRoot, 'acme-challenge');

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
  /** Parsed manifests by group (or why one does not parse), kept while the group's manifest text is the same. */
  private readonly manifests = new Map<number, { text: string; parsed: Promise<CodebaseManifest | string | null> }>();

  constructor(
    private readonly dataSource: DataSource,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
  ) {}

  /**
   * Where the dispatcher's shops log: the shared access log, but on the
   * embedded default's own machine a file under its nginx dir (its private
   * nginx runs as the engine's user, who may not write /var/log/nginx).
   */
  accessLog(server: Server): string {
    return this.config.embedded && server.transport === 'local' ? posix.join(server.nginxConfDir, 'logs', 'shops-access.log') : SHOPS_ACCESS_LOG;
  }

  private frame(server: Server): Pick<DispatcherInput, 'confDir' | 'accessLog' | 'httpPort' | 'httpsPort' | 'acmeChallengeDir'> {
    return { confDir: currentDir(server), accessLog: this.accessLog(server), httpPort: server.httpPort ?? 80, httpsPort: server.httpsPort ?? 443, acmeChallengeDir: acmeChallengeDirOn(server) };
  }

  /** The group's manifest; a string when it does not parse (why), null when the group has none yet. */
  private manifest(group: SharedCodeGroup | undefined): Promise<CodebaseManifest | string | null> {
    if (!group?.manifest) return Promise.resolve(null);
    const text = JSON.stringify(group.manifest);
    const known = this.manifests.get(group.id);
    if (known?.text === text) return known.parsed;
    const parsed = parseManifest(group.manifest).catch((error: unknown) => `the manifest of code group ${group.name} does not parse: ${error instanceof Error ? error.message : String(error)}`);
    if (this.manifests.size > 1000) this.manifests.clear();
    this.manifests.set(group.id, { text, parsed });
    return parsed;
  }

  /**
   * The install's PHP backends as dispatcher `dispatcher` reaches them, from
   * its active install_servers rows: on a server whose PHP the engine
   * manages, the install's own pool (the dispatcher's own through its unix
   * socket; another dispatcher's socket is that one's own nginx's, so it is
   * left out; a handler's TCP port on its private IP); on one it does not,
   * the shared pool on port 9000. The row's weight; a server down or
   * draining is out of rotation; weight 0 on a permanent handler (the
   * install's master or replica) makes it a backup behind the clouds.
   */
  private backendsOf(dispatcher: Server, fsName: string, rows: Membership[], servers: Map<number, Server>): InstallInput['backends'] {
    const backends = new Map<string, { weight: number; backup: boolean }>();
    for (const row of rows) {
      const s = servers.get(Number(row.serverId));
      if (!s || row.state !== 'active') continue;
      const ip = s.privateIp ?? '127.0.0.1';
      const host = ip.includes(':') ? `[${ip}]` : ip;
      let address: string;
      if (!managesPhp(s, this.config)) address = `${host}:${PHP_FPM_PORT}`;
      else if (poolListensOnSocket(s)) {
        if (s.id !== dispatcher.id) continue;
        address = `unix:${poolSocketOf(s, { fsName })}`;
      } else {
        if (row.poolPort === null || row.poolPort === undefined) continue;
        address = `${host}:${Number(row.poolPort)}`;
      }
      const out = s.state !== 'active';
      const weight = out ? 0 : Number(row.weight);
      const backup = !out && weight === 0 && row.role !== 'cloud';
      const known = backends.get(address);
      if (!known || (known.backup && !backup) || (known.backup === backup && weight > known.weight)) backends.set(address, { weight, backup });
    }
    // Backups only (a permanent handler set to 0 with no cloud to stand before it): they are the rotation.
    const primaries = [...backends.values()].some((b) => !b.backup);
    return [...backends].map(([address, b]) => (b.backup && primaries ? { address, weight: b.weight, backup: true } : { address, weight: b.backup ? 1 : b.weight }));
  }

  async load(server: Server, onlyInstallId?: number): Promise<DispatcherInput> {
    const m = this.dataSource.manager;
    // Raw rows of the columns the render needs: no entity hydration for ten thousand installs.
    const only = (alias: string) => (onlyInstallId === undefined ? '1 = 1' : `${alias} = :only`);
    const mine = (alias: string) => `mine.installId = ${alias} AND mine.serverId = :serverId`;
    // Every query at once (each on its own pooled connection): none needs another's rows.
    const [installs, memberships, sites, siteIps, groups] = await Promise.all([
      m
        .createQueryBuilder(Install, 'i')
        .innerJoin(InstallServer, 'mine', 'mine.installId = i.id AND mine.serverId = :serverId', { serverId: server.id })
        .select(['i.id AS id', 'i.fsName AS fsName', 'i.sharedCodeGroupId AS groupId', 'i.customRewrites AS rewrites'])
        .where('i.status IN (:...served)', { served: SERVED })
        .andWhere('i.sharedCodeGroupId IS NOT NULL')
        .andWhere(only('i.id'), { only: onlyInstallId })
        .orderBy('i.id', 'ASC')
        .getRawMany<{ id: number; fsName: string; groupId: number; rewrites: string | null }>(),
      m
        .createQueryBuilder(InstallServer, 'isv')
        .innerJoin(InstallServer, 'mine', mine('isv.installId'), { serverId: server.id })
        .select(['isv.installId AS installId', 'isv.serverId AS serverId', 'isv.weight AS weight', 'isv.role AS role', 'isv.poolPort AS poolPort', 'isv.state AS state'])
        .where(only('isv.installId'), { only: onlyInstallId })
        .getRawMany<Membership>(),
      m
        .createQueryBuilder(InstallSite, 's')
        .innerJoin(InstallServer, 'mine', mine('s.installId'), { serverId: server.id })
        .select(['s.id AS id', 's.installId AS installId', 's.hostname AS hostname', 's.secureHostname AS secureHostname', 's.sslPemPath AS pem', 's.sslKeyPath AS keyPath'])
        .where(only('s.installId'), { only: onlyInstallId })
        .orderBy('s.id', 'ASC')
        .getRawMany<{ id: number; installId: number; hostname: string; secureHostname: string | null; pem: string | null; keyPath: string | null }>(),
      m
        .createQueryBuilder(InstallSiteIp, 'h')
        .innerJoin(ServerIp, 'ip', 'ip.id = h.serverIpId')
        .innerJoin(InstallSite, 'site', 'site.id = h.installSiteId')
        .innerJoin(InstallServer, 'mine', mine('site.installId'), { serverId: server.id })
        .select(['h.installSiteId AS siteId', 'ip.ip AS ip'])
        // On a failover node, the site's floating IPs of the other dispatchers too: one may move here (keepalived) and must
        // serve at once, without a rebuild. nginx listens on it before it arrives thanks to net.ipv4.ip_nonlocal_bind=1,
        // which registering the node presumes (the keepalived apply warns when it is off).
        .where('(h.serverId = :serverId OR (ip.kind = :floating AND EXISTS (SELECT 1 FROM failover_nodes fn WHERE fn.server_id = :serverId)))', { serverId: server.id, floating: 'floating' })
        .andWhere(only('site.installId'), { only: onlyInstallId })
        .getRawMany<{ siteId: number; ip: string }>(),
      m
        .createQueryBuilder(SharedCodeGroup, 'g')
        .where((qb) => {
          const ids = qb
            .subQuery()
            .select('i.sharedCodeGroupId')
            .from(Install, 'i')
            .innerJoin(InstallServer, 'mine', mine('i.id'))
            .where('i.status IN (:...served)')
            .andWhere(only('i.id'))
            .getQuery();
          return `g.id IN ${ids}`;
        })
        .setParameters({ serverId: server.id, served: SERVED, only: onlyInstallId })
        .getMany(),
    ]);
    if (installs.length === 0) return { ...this.frame(server), installs: [] };
    const servers = await m.find(Server, { where: { id: In([...new Set(memberships.map((r) => Number(r.serverId)))]) } });
    const serverById = new Map(servers.map((s) => [s.id, s]));
    const manifestOf = (groupId: number) => this.manifest(groups.find((g) => g.id === groupId));
    const membersOf = groupBy(memberships, (r) => Number(r.installId));
    const sitesOf = groupBy(sites, (s) => Number(s.installId));
    const ipsOf = groupBy(siteIps, (r) => Number(r.siteId));

    const inputs: InstallInput[] = [];
    for (const install of installs) {
      const id = Number(install.id);
      const manifest = await manifestOf(Number(install.groupId));
      if (!manifest) continue;
      if (typeof manifest === 'string') {
        // Refused like a bad rewrite: named, quarantined, its sites kept on their last good vhost.
        inputs.push({ id, fsName: install.fsName, root: '/', phpEntryPoints: [], deny: [], frontController: null, backends: [], rewrites: [], sites: [], refusal: manifest });
        continue;
      }
      inputs.push({
        id,
        fsName: install.fsName,
        root: posix.join(server.homeRoot, install.fsName, manifest.web.documentRoot),
        ...webRulesOf(manifest),
        backends: this.backendsOf(server, install.fsName, membersOf.get(id) ?? [], serverById),
        rewrites: rewritesOf(install.rewrites),
        sites: (sitesOf.get(id) ?? []).map((site) => ({
          hostname: site.hostname,
          secureHostname: site.secureHostname,
          ips: (ipsOf.get(Number(site.id)) ?? []).map((r) => r.ip),
          cert: site.pem && site.keyPath ? { pem: site.pem, key: site.keyPath } : null,
        })),
      });
    }
    return { ...this.frame(server), installs: inputs };
  }
}

/**
 * The manifest's web rules as the renderer takes them. Every rendered
 * template under the document root (a config file holding the database
 * password) is denied, by its path relative to the document root.
 */
export function webRulesOf(manifest: CodebaseManifest): Pick<InstallInput, 'phpEntryPoints' | 'deny' | 'denyPatterns' | 'deniedFiles' | 'frontController' | 'routing'> {
  const web = manifest.web;
  const under = `${web.documentRoot}/`;
  return {
    phpEntryPoints: web.phpEntryPoints,
    deny: web.deny ?? [],
    denyPatterns: web.denyPatterns ?? [],
    deniedFiles: (manifest.templates ?? []).filter((t) => t.target.startsWith(under)).map((t) => t.target.slice(under.length)),
    frontController: web.frontController ?? null,
    routing: web.routing ? { pass: web.routing.pass, ...(web.routing.param === undefined ? {} : { param: web.routing.param }), ...(web.routing.notFound ? { notFound: web.routing.notFound } : {}) } : null,
  };
}


/**
 * The install's stored rewrite rules, as the renderer's structure. Anything
 * that is not one is passed on as a rule the renderer refuses, so the
 * install is named and quarantined instead of silently losing a rule.
 */
function rewritesOf(text: string | null): RewriteInput[] {
  let stored: unknown;
  try {
    stored = text === null || text === '' ? [] : JSON.parse(text);
  } catch {
    stored = [{ match: 'unreadable JSON' }];
  }
  return (Array.isArray(stored) ? stored : [stored]).map((rule: unknown) => {
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
