import { Injectable } from '@nestjs/common';
import { DataSource, In, IsNull } from 'typeorm';
import { AuditEventRepository, InstallServer, Server, type AuditActor } from '@app/catalog';
import { NotFoundError } from '@app/common';
import { QueueService } from '@app/queue';
import { NginxRebuilds } from '@app/webserver';
import { handlerErrors } from './cloud-handlers.errors.js';
import { CLOUD_SERVER_DRAIN, CLOUD_SERVER_REMOVE, cloudServerResourceKey } from './cloud-server.jobs.js';
import { InstallHandlersService } from './install-handlers.service.js';
import { TrafficService } from './traffic.service.js';

/** A cloud server as operations see it: the inventory row's state and lease, and the installs it handles. */
export interface CloudServerState {
  server: Server;
  handlers: { installId: number; state: InstallServer['state']; weight: number; poolPort: number | null }[];
}

/**
 * Cloud servers (the seed's `cloud_manager --action=add/remove` and the
 * leases): added and checked through the inventory (`POST /v1/servers`,
 * `POST /v1/servers/:id/check`), then leased, drained and removed here.
 */
@Injectable()
export class CloudServersService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly queue: QueueService,
    private readonly rebuilds: NginxRebuilds,
    private readonly handlers: InstallHandlersService,
    private readonly traffic: TrafficService,
    private readonly audit: AuditEventRepository,
  ) {}

  async list(): Promise<CloudServerState[]> {
    const servers = (await this.dataSource.getRepository(Server).find({ order: { id: 'ASC' } })).filter(isCloud);
    return Promise.all(servers.map((s) => this.stateOf(s)));
  }

  async get(id: number): Promise<CloudServerState> {
    return this.stateOf(await this.cloud(id));
  }

  /** Sets or clears the lease; a new expiry is reminded again (the reminder mark is cleared). */
  async setLease(id: number, leaseExpiresAt: Date | null, by: AuditActor, now = new Date()): Promise<CloudServerState> {
    const server = await this.cloud(id);
    if (leaseExpiresAt !== null && leaseExpiresAt.getTime() <= now.getTime()) throw handlerErrors.leaseInPast(id);
    // Whole seconds: MySQL's datetime keeps no more, and the reminder compares against what it stored.
    const expires = leaseExpiresAt && new Date(Math.floor(leaseExpiresAt.getTime() / 1000) * 1000);
    await this.dataSource.getRepository(Server).update({ id }, { leaseExpiresAt: expires, leaseRemindedAt: null });
    await this.audit.record({ ...by, action: 'cloud-server.lease', targetType: 'server', targetId: id, details: { hostname: server.hostname, from: server.leaseExpiresAt?.toISOString() ?? null, to: expires?.toISOString() ?? null } });
    return this.get(id);
  }

  /**
   * Drains a cloud server: state `draining` (every upstream marks it
   * `down`: nginx sends it no new request, the ones in flight finish), the
   * nginx rebuild of every dispatcher serving its installs, and a job that
   * waits until each has it live; one transaction. Refused while it is the
   * only active handler of an install.
   */
  async drain(id: number, by: AuditActor): Promise<{ jobId: number }> {
    const server = await this.cloud(id);
    if (server.state === 'draining') throw handlerErrors.alreadyDraining(id, server.hostname);
    await this.refuseOnlyHandler(server);
    const jobId = await this.dataSource.transaction(async (m) => {
      await m.update(Server, { id, state: server.state }, { state: 'draining' });
      const rows = await m.find(InstallServer, { where: { serverId: id } });
      for (const installId of [...new Set(rows.map((r) => r.installId))].sort((a, b) => a - b)) await this.rebuilds.requestForInstall(installId, m);
      const { job } = await this.queue.enqueue(CLOUD_SERVER_DRAIN, { serverId: id }, { manager: m, resourceKey: cloudServerResourceKey(id) });
      return job.id;
    });
    this.queue.nudge();
    await this.audit.record({ ...by, action: 'cloud-server.drain', targetType: 'server', targetId: id, details: { hostname: server.hostname, from: server.state, jobId } });
    return { jobId };
  }

  /**
   * Removes a drained cloud server: each install it handles taken off by
   * the remove-handler saga (its pool, crons, home, database account and
   * user), then the inventory row, by a job that waits for them. Refused
   * unless draining, while an addition to it is under way, and while it is
   * the only active handler of an install.
   */
  async remove(id: number, by: AuditActor): Promise<{ jobId: number; handlerJobs: number[] }> {
    const server = await this.cloud(id);
    if (server.state !== 'draining') throw handlerErrors.notDrained(id, server.hostname, server.state);
    const rows = await this.traffic.rowsOn(id);
    const adding = rows.find((r) => r.state === 'adding');
    if (adding) throw handlerErrors.handlerBusy(adding.installId, id, 'adding');
    await this.refuseOnlyHandler(server);
    const result = await this.dataSource.transaction(async (m) => {
      const handlerJobs: number[] = [];
      for (const row of rows.filter((r) => r.state === 'active')) handlerJobs.push(await this.handlers.startRemoval(m, row.installId, id));
      const { job } = await this.queue.enqueue(CLOUD_SERVER_REMOVE, { serverId: id }, { manager: m, resourceKey: cloudServerResourceKey(id) });
      return { jobId: job.id, handlerJobs };
    });
    this.queue.nudge();
    await this.audit.record({ ...by, action: 'cloud-server.remove', targetType: 'server', targetId: id, details: { hostname: server.hostname, installs: rows.map((r) => r.installId), ...result } });
    return result;
  }

  /** Cloud servers whose lease ends within `withinMs` and were not reminded of this expiry. */
  async leasesToRemind(now: Date, withinMs: number): Promise<Server[]> {
    const servers = await this.dataSource.getRepository(Server).find({ where: { leaseRemindedAt: IsNull(), state: In(['active', 'down']) } });
    return servers.filter((s) => isCloud(s) && s.leaseExpiresAt !== null && s.leaseExpiresAt.getTime() - now.getTime() <= withinMs && s.leaseExpiresAt.getTime() > now.getTime());
  }

  /** Marks the reminder of the server's current expiry as sent; false when another engine did (or the lease changed meanwhile). */
  async claimReminder(server: Server, now: Date): Promise<boolean> {
    const result = await this.dataSource.getRepository(Server).update({ id: server.id, leaseRemindedAt: IsNull(), leaseExpiresAt: server.leaseExpiresAt! }, { leaseRemindedAt: now });
    return (result.affected ?? 0) > 0;
  }

  /** Gives a claimed reminder back (its mail was not sent: the next run tries again). */
  async releaseReminder(server: Server): Promise<void> {
    await this.dataSource.getRepository(Server).update({ id: server.id }, { leaseRemindedAt: null });
  }

  /** Cloud servers whose lease has ended and that are not drained yet. */
  async expiredLeases(now: Date): Promise<Server[]> {
    const servers = await this.dataSource.getRepository(Server).find({ where: { state: In(['active', 'down']) } });
    return servers.filter((s) => isCloud(s) && s.leaseExpiresAt !== null && s.leaseExpiresAt.getTime() <= now.getTime());
  }

  private async refuseOnlyHandler(server: Server): Promise<void> {
    const rows = await this.traffic.rowsOn(server.id, ['active']);
    const counts = await this.traffic.activeHandlersOf(rows.map((r) => r.installId), server.id);
    const alone = [...counts].filter(([, n]) => n === 0).map(([installId]) => installId);
    if (alone.length > 0) throw handlerErrors.onlyHandler(server.id, server.hostname, alone);
  }

  private async stateOf(server: Server): Promise<CloudServerState> {
    const rows = await this.traffic.rowsOn(server.id);
    return { server, handlers: rows.map((r) => ({ installId: r.installId, state: r.state, weight: r.weight, poolPort: r.poolPort })) };
  }

  private async cloud(id: number): Promise<Server> {
    const server = await this.dataSource.getRepository(Server).findOneBy({ id });
    if (!server) throw new NotFoundError('Server', id);
    if (!isCloud(server)) throw handlerErrors.notCloudServer(id, server.hostname);
    return server;
  }
}

/** A cloud server: a temporary PHP handler (role cloud), never a dispatcher (nginx serves sites from it). */
export function isCloud(server: Pick<Server, 'roles'>): boolean {
  return server.roles.includes('cloud') && !server.roles.includes('dispatcher');
}
