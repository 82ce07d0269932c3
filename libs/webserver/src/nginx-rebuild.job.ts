import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { DispatcherConfig, Server } from '@app/catalog';
import { JobHandler, PermanentJobError, type JobContext } from '@app/queue';
import { NginxPipeline } from './nginx-pipeline.service.js';
import { NGINX_REBUILD, NGINX_ROLLBACK, NginxRebuilds, type NginxRebuildPayload } from './nginx-rebuilds.service.js';

/**
 * Rebuilds one dispatcher's nginx: takes every request made so far (clears
 * `pending` first, then reads the wanted generation), applies the catalog,
 * and records that generation as applied. A dispatcher that is down is
 * skipped; the reconciler requests it again once it is back.
 */
@Injectable()
export class NginxRebuildJob {
  constructor(
    private readonly dataSource: DataSource,
    private readonly pipeline: NginxPipeline,
    private readonly rebuilds: NginxRebuilds,
  ) {}

  @JobHandler(NGINX_REBUILD)
  async run(payload: NginxRebuildPayload, job: JobContext): Promise<void> {
    const configs = this.dataSource.getRepository(DispatcherConfig);
    await configs.update({ serverId: payload.serverId }, { pending: false });
    const { wantedGeneration } = await this.rebuilds.configRow(payload.serverId);
    const server = await this.dataSource.getRepository(Server).findOneBy({ id: payload.serverId });
    if (!server) throw new PermanentJobError(`server ${payload.serverId} is not in the inventory`);
    if (!server.roles.includes('dispatcher')) {
      job.log(`${server.hostname} is not a dispatcher: nothing to rebuild`);
      return;
    }
    if (server.state === 'down') {
      job.log(`${server.hostname} is down: skipped; rebuilt when it is back`);
      return;
    }
    try {
      const report = await this.pipeline.apply(server, { log: job.log });
      job.log(JSON.stringify({ ...report, written: report.written.slice(0, 50) }));
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      // Through configRow: a build step waiting for this dispatcher is woken by the failure too.
      await this.rebuilds.configRow(server.id, { lastError: message.slice(0, 1024) });
      throw error;
    }
    await configs
      .createQueryBuilder()
      .update(DispatcherConfig)
      .set({ appliedGeneration: wantedGeneration })
      .where('server_id = :id AND applied_generation < :wanted', { id: server.id, wanted: wantedGeneration })
      .execute();
  }

  /** `rebuild-nginx --rollback`: last-good back live (tested first), serialized with the dispatcher's rebuilds. */
  @JobHandler(NGINX_ROLLBACK)
  async rollback(payload: NginxRebuildPayload, job: JobContext): Promise<void> {
    const server = await this.dataSource.getRepository(Server).findOneBy({ id: payload.serverId });
    if (!server) throw new PermanentJobError(`server ${payload.serverId} is not in the inventory`);
    const result = await this.pipeline.rollback(server, job.log);
    job.log(`${server.hostname}: live generation is ${result.generation} (nginx ${result.nginx})`);
  }
}
