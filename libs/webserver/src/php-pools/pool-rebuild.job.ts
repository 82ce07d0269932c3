import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { HandlerConfig, Server } from '@app/catalog';
import { JobHandler, PermanentJobError, type JobContext } from '@app/queue';
import { PoolPipeline } from './pool-pipeline.service.js';
import { PHP_REBUILD, PoolRebuilds, type PoolRebuildPayload } from './pool-rebuilds.service.js';

/**
 * Rebuilds one handler's php-fpm pools: takes every request made so far
 * (clears `pending` first, then reads the wanted generation), applies the
 * catalog, and records that generation as applied. A handler that is down
 * is skipped; the reconciler requests it again once it is back.
 */
@Injectable()
export class PoolRebuildJob {
  constructor(
    private readonly dataSource: DataSource,
    private readonly pipeline: PoolPipeline,
    private readonly rebuilds: PoolRebuilds,
  ) {}

  @JobHandler(PHP_REBUILD)
  async run(payload: PoolRebuildPayload, job: JobContext): Promise<void> {
    const configs = this.dataSource.getRepository(HandlerConfig);
    await configs.update({ serverId: payload.serverId }, { pending: false });
    const { wantedGeneration } = await this.rebuilds.configRow(payload.serverId);
    const server = await this.dataSource.getRepository(Server).findOneBy({ id: payload.serverId });
    if (!server) throw new PermanentJobError(`server ${payload.serverId} is not in the inventory`);
    if (server.state === 'down') {
      job.log(`${server.hostname} is down: skipped; rebuilt when it is back`);
      return;
    }
    try {
      const report = await this.pipeline.apply(server, { log: job.log });
      job.log(JSON.stringify({ ...report, written: report.written.slice(0, 50), removed: report.removed.slice(0, 50) }));
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      await configs.update({ serverId: server.id }, { lastError: message.slice(0, 1024) });
      throw error;
    }
    await configs
      .createQueryBuilder()
      .update(HandlerConfig)
      .set({ appliedGeneration: wantedGeneration })
      .where('server_id = :id AND applied_generation < :wanted', { id: server.id, wanted: wantedGeneration })
      .execute();
  }
}
