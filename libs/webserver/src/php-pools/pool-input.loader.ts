import { posix } from 'node:path';
import { Inject, Injectable } from '@nestjs/common';
import { DataSource, In } from 'typeorm';
import { Install, InstallServer, Server, SharedCodeGroup } from '@app/catalog';
import { parseManifest, type CodebaseManifest } from '@app/codebases';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { managesPhp, phpUserOf, poolListensOnSocket, poolSocketOf } from './pool-names.js';
import type { HandlerPoolsInput, PoolInstallInput } from './pool-render.js';

/** The statuses whose pools a handler runs: being built (the saga waits for its pool) and live. */
const SERVED = ['building', 'live'] as const;
/** The rows of a handler that get a pool: being added (no traffic yet) and active; a row being removed has none. */
const POOLED = ['adding', 'active'] as const;

/**
 * What a pool's open_basedir opens of the group on a server: its releases
 * (`<shared code root>/<group>/releases`, code-layout.ts), every one (a
 * rollout switches the home's `.code` between them without touching the
 * pool), never the group's git repository beside them.
 */
export const codeDirOn = (server: Pick<Server, 'sharedCodeRoot'>, group: Pick<SharedCodeGroup, 'path'>): string => posix.join(server.sharedCodeRoot, posix.basename(group.path), 'releases');

/** nginx's user and group, from `WEB_USER` (`user` or `user:group`). */
export function webUserOf(config: Pick<EngineConfig, 'webUser'>): { user: string; group: string } {
  const [user, group] = config.webUser.split(':');
  return { user: user!, group: group ?? user! };
}

/**
 * Reads the catalog into the pool renderer's input for one managed handler:
 * every install building or live with a row on it (adding or active), its
 * user, home, group checkout there, where its pool listens (a socket when
 * the handler is a dispatcher, else its row's port on the handler's private
 * IP, open to the private IPs of the install's dispatchers) and its
 * manifest's PHP settings. A handful of queries, whatever the number.
 */
@Injectable()
export class PoolInputLoader {
  private readonly manifests = new Map<number, { text: string; parsed: Promise<CodebaseManifest | string | null> }>();

  constructor(
    private readonly dataSource: DataSource,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
  ) {}

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

  async load(server: Server, onlyInstallId?: number): Promise<HandlerPoolsInput> {
    const web = webUserOf(this.config);
    const frame = { poolDir: server.phpFpmPoolDir ?? '', listenOwner: web.user, listenGroup: web.group };
    if (!managesPhp(server, this.config)) return { ...frame, installs: [] };
    const m = this.dataSource.manager;
    const only = (alias: string) => (onlyInstallId === undefined ? '1 = 1' : `${alias} = :only`);
    const installs = await m
      .createQueryBuilder(Install, 'i')
      .innerJoin(InstallServer, 'mine', 'mine.installId = i.id AND mine.serverId = :serverId AND mine.state IN (:...pooled)', { serverId: server.id, pooled: POOLED })
      .select(['i.id AS id', 'i.fsName AS fsName', 'i.sharedCodeGroupId AS groupId', 'mine.poolPort AS poolPort'])
      .where('i.status IN (:...served)', { served: SERVED })
      .andWhere('i.sharedCodeGroupId IS NOT NULL')
      .andWhere(only('i.id'), { only: onlyInstallId })
      .orderBy('i.id', 'ASC')
      .getRawMany<{ id: number; fsName: string; groupId: number; poolPort: number | null }>();
    if (installs.length === 0) return { ...frame, installs: [] };
    const ids = installs.map((i) => Number(i.id));
    const groupIds = [...new Set(installs.map((i) => Number(i.groupId)))];
    const [memberships, groups] = await Promise.all([
      // The servers of every row of these installs: which are dispatchers, and their private IPs (the allowed clients of a TCP pool).
      onlyInstallId === undefined
        ? m
            .createQueryBuilder(InstallServer, 'isv')
            .innerJoin(InstallServer, 'mine', 'mine.installId = isv.installId AND mine.serverId = :serverId', { serverId: server.id })
            .innerJoin(Server, 's', 's.id = isv.serverId')
            .select(['isv.installId AS installId', 's.privateIp AS privateIp', 's.roles AS roles'])
            .getRawMany<{ installId: number; privateIp: string | null; roles: string }>()
        : m
            .createQueryBuilder(InstallServer, 'isv')
            .innerJoin(Server, 's', 's.id = isv.serverId')
            .select(['isv.installId AS installId', 's.privateIp AS privateIp', 's.roles AS roles'])
            .where('isv.installId IN (:...ids)', { ids })
            .getRawMany<{ installId: number; privateIp: string | null; roles: string }>(),
      m.find(SharedCodeGroup, { where: { id: In(groupIds) } }),
    ]);
    const clientsOf = new Map<number, Set<string>>();
    for (const row of memberships) {
      // `roles` is stored as a word list (comma separated).
      if (!String(row.roles).split(/[ ,]+/).includes('dispatcher')) continue;
      const set = clientsOf.get(Number(row.installId)) ?? new Set<string>();
      set.add(row.privateIp ?? '127.0.0.1');
      clientsOf.set(Number(row.installId), set);
    }
    const groupById = new Map(groups.map((g) => [g.id, g]));
    const socket = poolListensOnSocket(server);
    const ip = server.privateIp ?? '127.0.0.1';
    const out: PoolInstallInput[] = [];
    for (const row of installs) {
      const id = Number(row.id);
      const group = groupById.get(Number(row.groupId));
      const manifest = await this.manifest(group);
      const base = {
        id,
        fsName: row.fsName,
        user: phpUserOf({ id }),
        home: posix.join(server.homeRoot, row.fsName),
        codeDir: group ? codeDirOn(server, group) : '/',
        settings: manifest && typeof manifest !== 'string' ? (manifest.php?.settings ?? []).map((s) => ({ name: s.name, value: s.value })) : [],
      };
      let refusal: string | undefined;
      if (typeof manifest === 'string') refusal = manifest;
      else if (!group) refusal = `install ${id} has no code group`;
      if (socket) {
        out.push({ ...base, listen: { socket: poolSocketOf(server, row) }, ...(refusal ? { refusal } : {}) });
        continue;
      }
      const port = row.poolPort === null ? null : Number(row.poolPort);
      if (port === null) refusal ??= `install ${id} has no pool port on ${server.hostname}`;
      out.push({ ...base, listen: { ip, port: port ?? 0, allowedClients: [...(clientsOf.get(id) ?? new Set(['127.0.0.1']))].sort() }, ...(refusal ? { refusal } : {}) });
    }
    return { ...frame, installs: out };
  }
}
