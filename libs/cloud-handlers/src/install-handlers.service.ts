import { Inject, Injectable } from '@nestjs/common';
import { DataSource, In, type EntityManager } from 'typeorm';
import { AuditEventRepository, Install, InstallServer, Server, type AuditActor } from '@app/catalog';
import { NotFoundError } from '@app/common';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { QueueService } from '@app/queue';
import { allocatePoolPort, managesPhp, NginxRebuilds, poolListensOnSocket } from '@app/webserver';
import { handlerErrors } from './cloud-handlers.errors.js';
import { INSTALL_HANDLER_ADD } from './handler-add.job.js';
import { INSTALL_HANDLER_REMOVE } from './handler-remove.job.js';

export interface HandlerRow {
  serverId: number;
  hostname: string;
  role: InstallServer['role'];
  state: InstallServer['state'];
  weight: number;
  poolPort: number | null;
  serverState: Server['state'];
}

/** The same install's changes run one at a time, after its build: its jobs share the build's resource key. */
export const installResourceKey = (installId: number) => `install:${installId}`;

/** How often an allocation that lost a pool port race is tried again. */
const PORT_RACE_TRIES = 3;

/**
 * An install's handlers (its install_servers rows): add a cloud (a saga
 * job), take one off (a saga job), weights and "clouds only". Each change
 * is one transaction with the jobs and nginx rebuilds it needs, and audited.
 */
@Injectable()
export class InstallHandlersService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly queue: QueueService,
    private readonly rebuilds: NginxRebuilds,
    private readonly audit: AuditEventRepository,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
  ) {}

  async list(installId: number): Promise<HandlerRow[]> {
    await this.install(installId);
    const rows = await this.dataSource.getRepository(InstallServer).find({ where: { installId }, order: { id: 'ASC' } });
    const servers = new Map((rows.length ? await this.dataSource.getRepository(Server).find({ where: { id: In(rows.map((r) => r.serverId)) } }) : []).map((s) => [s.id, s]));
    return rows.map((r) => ({ serverId: r.serverId, hostname: servers.get(r.serverId)!.hostname, role: r.role, state: r.state, weight: r.weight, poolPort: r.poolPort, serverState: servers.get(r.serverId)!.state }));
  }

  /**
   * Adds a handler: its row (`cloud`, `adding`, a pool port where its pools
   * listen on TCP) and the saga's job, in one transaction.
   */
  async add(installId: number, serverId: number, weight: number | undefined, by: AuditActor): Promise<{ jobId: number; handler: HandlerRow }> {
    const install = await this.install(installId);
    if (install.status !== 'live') throw handlerErrors.installNotLive(installId, install.status);
    const server = await this.dataSource.getRepository(Server).findOneBy({ id: serverId });
    if (!server) throw new NotFoundError('Server', serverId);
    if (!server.roles.includes('cloud') && !server.roles.includes('handler')) throw handlerErrors.notAHandlerServer(serverId, server.hostname);
    if (server.state !== 'active') throw handlerErrors.serverNotActive(serverId, server.hostname, server.state);
    if (!server.privateIp) throw handlerErrors.noPrivateIp(serverId, server.hostname);
    // nginx sends SCRIPT_FILENAME (the dispatcher's path) to whichever handler it picks: every one must hold the files there.
    for (const dispatcher of await this.rebuilds.dispatchersOf(installId)) {
      for (const field of ['homeRoot', 'sharedCodeRoot'] as const) {
        if (server[field] !== dispatcher[field]) throw handlerErrors.layoutDiffers(serverId, server.hostname, dispatcher.hostname, field, server[field], dispatcher[field]);
      }
    }
    const tcp = managesPhp(server, this.config) && !poolListensOnSocket(server);
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await this.dataSource.transaction(async (m) => {
          if (await m.findOneBy(InstallServer, { installId, serverId })) throw handlerErrors.handlerExists(installId, serverId);
          const poolPort = tcp ? await allocatePoolPort(m, serverId) : null;
          const row = await m.save(m.create(InstallServer, { installId, serverId, role: 'cloud', weight: weight ?? 1, poolPort, state: 'adding' }));
          const { job } = await this.queue.enqueue(INSTALL_HANDLER_ADD, { installId, serverId }, { manager: m, resourceKey: installResourceKey(installId) });
          return { jobId: job.id, row };
        });
        this.queue.nudge();
        await this.audit.record({ ...by, action: 'install.handler.add', targetType: 'install', targetId: installId, details: { serverId, hostname: server.hostname, weight: result.row.weight, poolPort: result.row.poolPort, jobId: result.jobId } });
        return { jobId: result.jobId, handler: { serverId, hostname: server.hostname, role: 'cloud', state: 'adding', weight: result.row.weight, poolPort: result.row.poolPort, serverState: server.state } };
      } catch (error) {
        // Two additions to one server took the same free port: the unique index refused one; it takes the next.
        if (attempt < PORT_RACE_TRIES && isDuplicate(error) && !(await this.dataSource.getRepository(InstallServer).findOneBy({ installId, serverId }))) continue;
        if (isDuplicate(error)) throw handlerErrors.handlerExists(installId, serverId);
        throw error;
      }
    }
  }

  /**
   * Takes a cloud off the install: refused for its master and replica (its
   * permanent handlers) and while it is its only active handler. The row
   * turns `removing` with the job, so the next nginx of each dispatcher has
   * no traffic for it even before the job runs.
   */
  async remove(installId: number, serverId: number, by: AuditActor): Promise<{ jobId: number }> {
    const install = await this.install(installId);
    const row = await this.row(installId, serverId);
    if (row.role === 'master' || install.masterServerId === serverId) throw handlerErrors.masterNotRemovable(installId, serverId);
    if (row.role !== 'cloud') throw handlerErrors.permanentNotRemovable(installId, serverId, row.role);
    if (row.state !== 'active') throw handlerErrors.handlerBusy(installId, serverId, row.state);
    const jobId = await this.dataSource.transaction(async (m) => {
      const others = await this.activeOthers(m, installId, serverId);
      if (others.length === 0) {
        const server = await m.findOneByOrFail(Server, { id: serverId });
        throw handlerErrors.onlyHandler(serverId, server.hostname, [installId]);
      }
      return this.startRemoval(m, installId, serverId);
    });
    this.queue.nudge();
    await this.audit.record({ ...by, action: 'install.handler.remove', targetType: 'install', targetId: installId, details: { serverId, jobId } });
    return { jobId };
  }

  /**
   * Within the caller's transaction: the row `removing`, clouds-only undone
   * when no other cloud would be left (nginx refuses an upstream of backups
   * only), the dispatchers' rebuilds and the removal's job.
   */
  async startRemoval(m: EntityManager, installId: number, serverId: number): Promise<number> {
    await m.update(InstallServer, { installId, serverId }, { state: 'removing' });
    const clouds = await m.count(InstallServer, { where: { installId, role: 'cloud', state: In(['adding', 'active']) } });
    if (clouds === 0) await m.update(InstallServer, { installId, role: In(['master', 'replica']), weight: 0 }, { weight: 1 });
    await this.rebuilds.requestForInstall(installId, m);
    const { job } = await this.queue.enqueue(INSTALL_HANDLER_REMOVE, { installId, serverId }, { manager: m, resourceKey: installResourceKey(installId) });
    return job.id;
  }

  /**
   * A handler's weight (0-100). On a permanent handler 0 makes it a backup
   * (used only when every other handler fails), on a cloud 0 takes it out
   * of rotation; permanent handlers may all be backups only while the
   * install has an active cloud with a weight.
   */
  async setWeight(installId: number, serverId: number, weight: number, by: AuditActor): Promise<HandlerRow> {
    await this.install(installId);
    const row = await this.row(installId, serverId);
    await this.dataSource.transaction(async (m) => {
      await m.update(InstallServer, { id: row.id }, { weight });
      await this.checkPrimary(m, installId);
      await this.rebuilds.requestForInstall(installId, m);
    });
    this.queue.nudge();
    await this.audit.record({ ...by, action: 'install.handler.weight', targetType: 'install', targetId: installId, details: { serverId, from: row.weight, to: weight } });
    return (await this.list(installId)).find((h) => h.serverId === serverId)!;
  }

  /**
   * The seed's "all their traffic to the new clouds, not to d1 and d2":
   * weight 0 on the master and replica rows (nginx `backup`: they serve
   * again if every cloud fails); off puts them back at weight 1.
   */
  async cloudsOnly(installId: number, enabled: boolean, by: AuditActor): Promise<HandlerRow[]> {
    await this.install(installId);
    await this.dataSource.transaction(async (m) => {
      if (enabled) {
        await m.update(InstallServer, { installId, role: In(['master', 'replica']) }, { weight: 0 });
        await this.checkPrimary(m, installId);
      } else {
        await m.update(InstallServer, { installId, role: In(['master', 'replica']), weight: 0 }, { weight: 1 });
      }
      await this.rebuilds.requestForInstall(installId, m);
    });
    this.queue.nudge();
    await this.audit.record({ ...by, action: 'install.handler.clouds-only', targetType: 'install', targetId: installId, details: { enabled } });
    return this.list(installId);
  }

  /** Refuses (rolling back the caller's transaction) when every permanent handler would be a backup and no cloud serves with a weight. */
  private async checkPrimary(m: EntityManager, installId: number): Promise<void> {
    const permanent = await m.count(InstallServer, { where: { installId, role: In(['master', 'replica']), weight: 0 } });
    const all = await m.count(InstallServer, { where: { installId, role: In(['master', 'replica']) } });
    if (permanent < all || all === 0) return;
    const clouds = await m
      .createQueryBuilder(InstallServer, 'isv')
      .innerJoin(Server, 's', 's.id = isv.serverId')
      .where('isv.installId = :installId', { installId })
      .andWhere("isv.role = 'cloud' AND isv.state = 'active' AND isv.weight > 0 AND s.state = 'active'")
      .getCount();
    if (clouds === 0) throw handlerErrors.noCloud(installId);
  }

  /** The install's other rows that serve: active, on an active server. */
  private async activeOthers(m: EntityManager, installId: number, serverId: number): Promise<InstallServer[]> {
    return m
      .createQueryBuilder(InstallServer, 'isv')
      .innerJoin(Server, 's', 's.id = isv.serverId')
      .where('isv.installId = :installId AND isv.serverId <> :serverId', { installId, serverId })
      .andWhere("isv.state = 'active' AND s.state = 'active'")
      .getMany();
  }

  private async install(installId: number): Promise<Install> {
    const install = await this.dataSource.getRepository(Install).findOneBy({ id: installId });
    if (!install) throw new NotFoundError('Install', installId);
    return install;
  }

  private async row(installId: number, serverId: number): Promise<InstallServer> {
    const row = await this.dataSource.getRepository(InstallServer).findOneBy({ installId, serverId });
    if (!row) throw handlerErrors.noSuchHandler(installId, serverId);
    return row;
  }
}

/** A unique index refused the row (MySQL/MariaDB ER_DUP_ENTRY, SQLite's UNIQUE constraint). */
function isDuplicate(error: unknown): boolean {
  const e = error as { code?: string; errno?: number; message?: string } | null;
  return !!e && (e.code === 'ER_DUP_ENTRY' || e.errno === 1062 || /UNIQUE constraint failed/.test(e.message ?? ''));
}
