import { Inject, Injectable } from '@nestjs/common';
import { DataSource, In, type EntityManager } from 'typeorm';
import { Install, InstallServer, InstallSite, InstallSiteIp, Server, ServerIp, SharedCodeGroup, SiteName, type License } from '@app/catalog';
import { DomainError, ValidationFailedError } from '@app/common';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { rootsOf } from '@app/hosts';
import { sqlDialect, type SqlDialect } from '@app/queue';
import type { CreateInstallDto } from './dto/create-install.dto.js';
import { dbNameFor, fsNameBase, namesInHomeRoot, nextFsName, RESERVED_NAMES } from './naming.js';
import { matchPinRule } from './pin-rules.service.js';
import { encryptSecret, randomSecret } from './secrets-cipher.js';

/** Conflicts with a concurrent order (same fs name, same IP, deadlock): the whole prepare runs again. */
const MAX_TRIES = 40;
/** Code groups in these states take new installs (a group still cloning takes them: the build waits for it). */
const GROUP_STATES_TAKING_INSTALLS = ['pending', 'cloning', 'ready', 'updating'];
/** Free IPs an order picks from at random, so concurrent orders seldom want the same one. */
const IP_CHOICES = 32;

export interface Prepared {
  install: Install;
  /** False when the order reference was seen before: the same install is returned. */
  created: boolean;
}

/**
 * The prepare phase (the seed's bare_slave::install), in one transaction:
 * the order is recorded with everything chosen (master and other servers,
 * names, password, code group, IPs) or nothing is. The database's unique
 * indexes settle races between concurrent orders; a loser runs again and
 * sees the winner's rows.
 */
@Injectable()
export class PrepareService {
  private readonly dialect: SqlDialect;

  constructor(
    private readonly dataSource: DataSource,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
  ) {
    this.dialect = sqlDialect(dataSource);
  }

  async prepare(order: CreateInstallDto, after?: (m: EntityManager, install: Install) => Promise<void>): Promise<Prepared> {
    checkSites(order);
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.dataSource.transaction((m) => this.prepareIn(m, order, after));
      } catch (error) {
        const key = this.dialect.isDuplicateKey(error) ? duplicateKeyName(error) : null;
        if (key === 'order_ref') {
          const install = await this.dataSource.getRepository(Install).findOneByOrFail({ orderRef: order.orderRef });
          return { install, created: false };
        }
        if (key === 'site_names') throw hostnameTaken(siteNames(order));
        const retry = key !== null || this.dialect.isRetryableConflict(error);
        if (!retry) throw error;
        if (attempt >= MAX_TRIES) {
          throw new DomainError('BUSY', 'Too many concurrent orders competed for the same names or IPs; nothing was recorded, send the order again', 503, { tries: attempt });
        }
        await new Promise((r) => setTimeout(r, Math.random() * 20 * attempt));
      }
    }
  }

  private async prepareIn(m: EntityManager, order: CreateInstallDto, after?: (m: EntityManager, install: Install) => Promise<void>): Promise<Prepared> {
    const existing = await m.findOne(Install, { where: { orderRef: order.orderRef } });
    if (existing) return { install: existing, created: false };

    const names = siteNames(order);
    const claimed = await m.find(SiteName, { where: { name: In(names) } });
    if (claimed.length > 0) throw hostnameTaken(claimed.map((c) => c.name));

    const servers = await m.find(Server, { where: { state: 'active' }, order: { id: 'ASC' } });
    const hosted = await this.installsPerServer(m);
    const fewest = (candidates: Server[]) => [...candidates].sort((a, b) => (hosted.get(a.id) ?? 0) - (hosted.get(b.id) ?? 0) || a.id - b.id)[0];
    const dispatchers = servers.filter((s) => s.roles.includes('dispatcher'));
    if (dispatchers.length === 0) throw new DomainError('NO_DISPATCHER', 'No active dispatcher in the inventory can take an install', 503);
    const pin = await matchPinRule(m, order.customerEmail, order.attributes ?? {});
    let master: Server;
    if (order.serverId === undefined && pin?.serverId) {
      const pinned = dispatchers.find((s) => s.id === pin.serverId);
      if (!pinned) throw new DomainError('SERVER_UNAVAILABLE', `Pin rule ${pin.id} names server ${pin.serverId}, which is not an active dispatcher`, 503, { pinRule: pin.id });
      master = pinned;
    } else if (order.serverId !== undefined) {
      const requested = dispatchers.find((s) => s.id === order.serverId);
      if (!requested) throw new DomainError('SERVER_UNAVAILABLE', `Server ${order.serverId} is not an active dispatcher`, 400, { serverId: order.serverId });
      master = requested;
    } else {
      master = fewest(dispatchers)!;
    }
    // Free: the master only. Paid: the master and every other dispatcher.
    const installServers = order.license === 'paid' ? [master, ...dispatchers.filter((s) => s.id !== master.id)] : [master];
    const databases = servers.filter((s) => s.roles.includes('database'));
    if (databases.length === 0) throw new DomainError('NO_DATABASE_SERVER', 'No active database server in the inventory', 503);
    const dbServer = await this.fewestDatabases(m, databases);

    const group = pin?.codeGroupId ? await this.takePinnedSlot(m, pin.codeGroupId) : await this.takeGroupSlot(m, order.license);
    const base = fsNameBase(order.sites[0]!.hostname);
    const taken = new Set((await m.createQueryBuilder(Install, 'i').select('i.fsName', 'fsName').where('i.fsName LIKE :p', { p: `${base}%` }).getRawMany<{ fsName: string }>()).map((r) => r.fsName));
    // Never a name that is an account or a directory the servers have (the home, the database user): another is chosen.
    for (const name of RESERVED_NAMES) taken.add(name);
    for (const server of servers) for (const name of namesInHomeRoot({ homeRoot: server.homeRoot, roots: rootsOf(server) })) taken.add(name);
    const fsName = nextFsName(base, taken);

    // A paid install takes, on each dispatcher owning a failover group, a floating IP of that group (it moves with keepalived); elsewhere a dedicated one.
    const floatingOf = order.license === 'paid' ? await this.floatingServers(m, installServers) : new Set<number>();
    const install = await m.save(
      m.create(Install, {
        orderRef: order.orderRef,
        customerEmail: order.customerEmail.toLowerCase(),
        license: order.license,
        storeName: order.shop?.storeName ?? null,
        adminEmail: order.shop?.adminEmail?.toLowerCase() ?? null,
        locale: order.shop?.locale ?? null,
        orderAttributes: order.attributes && Object.keys(order.attributes).length > 0 ? { ...order.attributes } : null,
        fsName,
        dbName: dbNameFor(fsName),
        dbUser: fsName,
        dbPasswordEnc: encryptSecret(this.config.secretsKey, randomSecret(24)),
        dbServerId: dbServer.id,
        sharedCodeGroupId: group?.id ?? null,
        masterServerId: master.id,
        dynamicIps: floatingOf.size > 0,
        customRewrites: null,
        status: 'preparing',
        statusReason: group ? null : pin?.codeGroupId ? await pinnedWaitReason(m, pin.codeGroupId, pin.id) : `waiting for a ${order.license} code group with room`,
      }),
    );
    for (const [i, server] of installServers.entries()) {
      await m.save(m.create(InstallServer, { installId: install.id, serverId: server.id, role: i === 0 ? 'master' : 'replica', weight: 1 }));
    }
    for (const site of order.sites) {
      const row = await m.save(
        m.create(InstallSite, {
          installId: install.id,
          hostname: site.hostname,
          secureHostname: site.secureHostname ?? null,
          relUrl: site.relUrl ?? '/',
          secureRelUrl: site.secureRelUrl ?? site.relUrl ?? '/',
          sslPemPath: null,
          sslKeyPath: null,
        }),
      );
      // The install's claim on its names: one unique index over every hostname and secure hostname.
      for (const name of new Set([site.hostname, ...(site.secureHostname ? [site.secureHostname] : [])])) {
        await m.insert(SiteName, { installId: install.id, installSiteId: row.id, name });
      }
      for (const server of installServers) {
        const ip = order.license === 'paid' ? await this.freeExclusiveIp(m, server, site.hostname, floatingOf) : await this.sharedIp(m, server, site.hostname);
        await m.save(
          m.create(InstallSiteIp, { installSiteId: row.id, serverIpId: ip.id, serverId: server.id, exclusiveIpId: ip.kind === 'shared' ? null : ip.id }),
        );
      }
    }
    if (after) await after(m, install);
    return { install, created: true };
  }

  private async installsPerServer(m: EntityManager): Promise<Map<number, number>> {
    const rows = await m
      .createQueryBuilder(InstallServer, 's')
      .innerJoin(Install, 'i', 'i.id = s.installId')
      .select('s.serverId', 'serverId')
      .addSelect('COUNT(*)', 'n')
      .where('i.status NOT IN (:...gone)', { gone: ['failed', 'removed'] })
      .groupBy('s.serverId')
      .getRawMany<{ serverId: number; n: number | string }>();
    return new Map(rows.map((r) => [Number(r.serverId), Number(r.n)]));
  }

  private async fewestDatabases(m: EntityManager, databases: Server[]): Promise<Server> {
    const rows = await m
      .createQueryBuilder(Install, 'i')
      .select('i.dbServerId', 'serverId')
      .addSelect('COUNT(*)', 'n')
      .where('i.dbServerId IN (:...ids)', { ids: databases.map((d) => d.id) })
      .andWhere('i.status NOT IN (:...gone)', { gone: ['failed', 'removed'] })
      .groupBy('i.dbServerId')
      .getRawMany<{ serverId: number; n: number | string }>();
    const count = new Map(rows.map((r) => [Number(r.serverId), Number(r.n)]));
    return [...databases].sort((a, b) => (count.get(a.id) ?? 0) - (count.get(b.id) ?? 0) || a.id - b.id)[0]!;
  }

  /**
   * A slot for an install that was accepted without one: the pin rule its
   * order matches (by email or by the order's attributes, kept with the
   * install), else the fewest-installs rule of its tier. Null: still no room.
   */
  async slotFor(m: EntityManager, install: Install): Promise<SharedCodeGroup | null> {
    const pin = await matchPinRule(m, install.customerEmail, install.orderAttributes ?? {});
    return pin?.codeGroupId ? this.takePinnedSlot(m, pin.codeGroupId) : this.takeGroupSlot(m, install.license);
  }

  /**
   * Same tier, not reserved for pinned customers, below its limit, fewest
   * installs first. The slot is taken by a conditional update, so two
   * orders can never overfill a group. Null when no group has room: the
   * order is still accepted and the build waits.
   */
  private async takeGroupSlot(m: EntityManager, tier: License): Promise<SharedCodeGroup | null> {
    const candidates = await m
      .createQueryBuilder(SharedCodeGroup, 'g')
      .where('g.tier = :tier AND g.pinned = :pinned AND g.locked = :locked AND g.installCount < g.installLimit', { tier, pinned: false, locked: false })
      .andWhere('g.state IN (:...states)', { states: GROUP_STATES_TAKING_INSTALLS })
      .orderBy('g.installCount', 'ASC')
      .addOrderBy('g.id', 'ASC')
      .getMany();
    for (const group of candidates) if (await takeSlot(m, group.id)) return group;
    return null;
  }

  /** A slot in the group a pin rule names (pinned groups are reserved for their rules); null when full. */
  private async takePinnedSlot(m: EntityManager, groupId: number): Promise<SharedCodeGroup | null> {
    return (await takeSlot(m, groupId)) ? m.findOneByOrFail(SharedCodeGroup, { id: groupId }) : null;
  }

  /** The servers whose pool has floating IPs (a failover group they own): paid installs take those there. */
  private async floatingServers(m: EntityManager, servers: Server[]): Promise<Set<number>> {
    const rows = await m
      .createQueryBuilder(ServerIp, 'ip')
      .select('DISTINCT ip.serverId', 'serverId')
      .where('ip.serverId IN (:...ids) AND ip.kind = :kind', { ids: servers.map((s) => s.id), kind: 'floating' })
      .getRawMany<{ serverId: number }>();
    return new Set(rows.map((r) => Number(r.serverId)));
  }

  /**
   * A dedicated (or, for a server owning a failover group, floating) IP of
   * the server that no site holds (the unique exclusive_ip_id settles races).
   * One of the first free ones at random: concurrent orders taking the
   * lowest would all collide on the same IP.
   */
  private async freeExclusiveIp(m: EntityManager, server: Server, hostname: string, floatingOf: ReadonlySet<number>): Promise<ServerIp> {
    const kind = floatingOf.has(server.id) ? 'floating' : 'dedicated';
    const free = await m
      .createQueryBuilder(ServerIp, 'ip')
      .leftJoin(InstallSiteIp, 'held', 'held.exclusiveIpId = ip.id')
      .where('ip.serverId = :server AND ip.kind = :kind AND held.id IS NULL', { server: server.id, kind })
      .orderBy('ip.id', 'ASC')
      .limit(IP_CHOICES)
      .getMany();
    const ip = free[Math.floor(Math.random() * free.length)];
    if (!ip) {
      throw new DomainError('IP_POOL_EXHAUSTED', `No free ${kind} IP left in the pool of ${server.hostname} for ${hostname}: add IPs to the pool`, 409, {
        server: server.hostname,
        kind,
      });
    }
    return ip;
  }

  /** The server's shared IP serving the fewest sites. */
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
    if (!row) {
      throw new DomainError('IP_POOL_EXHAUSTED', `No shared IP in the pool of ${server.hostname} for ${hostname}: add one to the pool`, 409, {
        server: server.hostname,
        kind: 'shared',
      });
    }
    return m.findOneByOrFail(ServerIp, { id: Number(row.id) });
  }
}

/**
 * Why an order pinned to a group waits: the group is locked (it takes its
 * customer's orders again once unlocked), or has no room.
 */
async function pinnedWaitReason(m: EntityManager, groupId: number, ruleId: number): Promise<string> {
  const group = await m.findOne(SharedCodeGroup, { where: { id: groupId } });
  if (group?.locked) return `waiting: the pinned code group ${groupId} (${group.name}) is locked (pin rule ${ruleId}); the order is placed there when it is unlocked`;
  return `waiting for room in the pinned code group ${groupId} (pin rule ${ruleId})`;
}

/** One slot of a group, by a conditional update: false when it is full. Concurrent orders can never overfill it. */
async function takeSlot(m: EntityManager, groupId: number): Promise<boolean> {
  const result = await m
    .createQueryBuilder()
    .update(SharedCodeGroup)
    .set({ installCount: () => 'install_count + 1' })
    // A retired, failed, removed or locked group takes nobody, pinned customers included.
    .where('id = :id AND install_count < install_limit AND locked = :locked AND state IN (:...states)', { id: groupId, locked: false, states: GROUP_STATES_TAKING_INSTALLS })
    .execute();
  return (result.affected ?? 0) === 1;
}

/** Every hostname and secure hostname of the order (a site's secure hostname may be its hostname). */
function siteNames(order: CreateInstallDto): string[] {
  return [...new Set(order.sites.flatMap((s) => [s.hostname, ...(s.secureHostname ? [s.secureHostname] : [])]))];
}

function checkSites(order: CreateInstallDto): void {
  const names = order.sites.flatMap((s) => [s.hostname, ...(s.secureHostname && s.secureHostname !== s.hostname ? [s.secureHostname] : [])]);
  const twice = names.filter((n, i) => names.indexOf(n) !== i);
  if (twice.length > 0) throw new ValidationFailedError([{ field: 'sites', problems: [`${[...new Set(twice)].join(', ')} named twice`] }]);
}

/** A name another install claims (as hostname or secure hostname): a conflict, nothing is recorded. */
function hostnameTaken(hostnames: string[]): DomainError {
  return new DomainError('HOSTNAME_TAKEN', `Already served by a live install: ${[...new Set(hostnames)].join(', ')}`, 409, { hostnames: [...new Set(hostnames)] });
}

/** Which unique index a duplicate-key error hit, by the column names both drivers mention. */
function duplicateKeyName(error: unknown): string | null {
  const message = String((error as { message?: unknown })?.message ?? '');
  for (const key of ['order_ref', 'site_names', 'fs_name', 'db_name', 'db_user', 'exclusive_ip']) {
    if (message.includes(key)) return key;
  }
  return 'other';
}
