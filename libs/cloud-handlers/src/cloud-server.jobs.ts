import { Injectable } from '@nestjs/common';
import { DataSource, In } from 'typeorm';
import { AuditEventRepository, InstallServer, Job, Server, ServerRepository } from '@app/catalog';
import { defineJobKind, JobDeferredError, JobHandler, PermanentJobError, type JobContext } from '@app/queue';
import { INSTALL_HANDLER_REMOVE } from './handler-remove.job.js';
import { RECHECK_MS, TrafficService } from './traffic.service.js';

export interface CloudServerPayload {
  serverId: number;
}

/** Waits until every dispatcher serving a draining cloud's installs has it out of rotation. */
export const CLOUD_SERVER_DRAIN = defineJobKind<CloudServerPayload>('cloud-server.drain', { maxAttempts: 5, backoff: { baseMs: 5_000, maxMs: 60_000 } });
/** Waits for the removal of every install from a drained cloud, then deletes the server's row. */
export const CLOUD_SERVER_REMOVE = defineJobKind<CloudServerPayload>('cloud-server.remove', { maxAttempts: 5, backoff: { baseMs: 5_000, maxMs: 60_000 } });

export const cloudServerResourceKey = (serverId: number) => `cloud-server:${serverId}`;

@Injectable()
export class CloudServerJobs {
  constructor(
    private readonly dataSource: DataSource,
    private readonly traffic: TrafficService,
    private readonly servers: ServerRepository,
    private readonly audit: AuditEventRepository,
  ) {}

  /** Done once each vhost of the cloud's installs on each dispatcher is live as the catalog has it (the cloud `down` there). */
  @JobHandler(CLOUD_SERVER_DRAIN)
  async drain({ serverId }: CloudServerPayload, job: JobContext): Promise<void> {
    const server = await this.dataSource.getRepository(Server).findOneBy({ id: serverId });
    if (!server) return job.log(`server ${serverId} is gone`);
    if (server.state !== 'draining') return job.log(`${server.hostname} is ${server.state} again: nothing to wait for`);
    const rows = await this.traffic.rowsOn(serverId);
    await this.traffic.awaitVhosts(await this.traffic.vhostsOf(rows.map((r) => r.installId)), job.log.bind(job), { request: false });
    job.log(`${server.hostname} drained: out of every upstream of its ${rows.length} install(s)`);
  }

  /** Deletes the server once the remove-handler sagas took every install off it; a removal that died fails this job. */
  @JobHandler(CLOUD_SERVER_REMOVE)
  async remove({ serverId }: CloudServerPayload, job: JobContext): Promise<void> {
    const server = await this.dataSource.getRepository(Server).findOneBy({ id: serverId });
    if (!server) return job.log(`server ${serverId} is gone already`);
    const left = await this.dataSource.getRepository(InstallServer).find({ where: { serverId } });
    if (left.length > 0) {
      const dead = (await this.dataSource.getRepository(Job).find({ where: { kind: INSTALL_HANDLER_REMOVE.name, state: In(['dead', 'cancelled']) } })).filter(
        (j) => (j.payload as { serverId?: number }).serverId === serverId && left.some((r) => r.installId === (j.payload as { installId?: number }).installId),
      );
      if (dead.length > 0) throw new PermanentJobError(`the removal of install(s) ${dead.map((j) => (j.payload as { installId: number }).installId).join(', ')} from ${server.hostname} failed (job ${dead.map((j) => j.id).join(', ')}): retry it, then this job`);
      throw new JobDeferredError(`waiting for ${left.length} install(s) to leave ${server.hostname}`, RECHECK_MS * 2);
    }
    await this.servers.remove(serverId);
    await this.audit.record({ actor: `job:${job.jobId}`, via: 'worker', action: 'cloud-server.removed', targetType: 'server', targetId: serverId, details: { hostname: server.hostname } });
    job.log(`${server.hostname} removed from the inventory`);
  }
}
