import { Inject, Injectable } from '@nestjs/common';
import { DataSource, In, type EntityManager } from 'typeorm';
import { HandlerConfig, Job, PoolQuarantine, Server } from '@app/catalog';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { ServerAccess } from '@app/hosts';
import { defineJobKind, QueueService } from '@app/queue';
import { FAILED_REBUILD_RETRY_MS, NGINX_REBUILD_PRIORITY } from '../nginx-rebuilds.service.js';
import { managesPhp, poolFileOf } from './pool-names.js';
import { PoolFiles } from './pool-files.js';
import { PoolInputLoader } from './pool-input.loader.js';
import { renderPools } from './pool-render.js';

export interface PoolRebuildPayload {
  serverId: number;
}

/** One handler's php-fpm pools rebuilt from the catalog (resource key `php:server:<id>`). */
export const PHP_REBUILD = defineJobKind<PoolRebuildPayload>('php.rebuild', {
  maxAttempts: 5,
  backoff: { baseMs: 5_000, maxMs: 120_000 },
});

/** Claimed before builds, as nginx rebuilds are (builds wait for both). */
export const PHP_REBUILD_PRIORITY = NGINX_REBUILD_PRIORITY;

export const phpResourceKey = (serverId: number) => `php:server:${serverId}`;

export type PoolState =
  | { state: 'live' }
  | { state: 'pending' }
  | { state: 'quarantined'; reason: string }
  /** The handler's last rebuild failed and none is queued or running: nothing will load the pool. */
  | { state: 'failed'; reason: string }
  | { state: 'not-served' };

/**
 * Pool rebuild requests, coalesced per handler exactly as NginxRebuilds
 * coalesces nginx's: the first request while none is queued enqueues a
 * `php.rebuild`; the others bump the wanted generation and ride along.
 */
@Injectable()
export class PoolRebuilds {
  constructor(
    private readonly dataSource: DataSource,
    private readonly queue: QueueService,
    private readonly access: ServerAccess,
    private readonly loader: PoolInputLoader,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
  ) {}

  /** Requests a rebuild of each handler (in id order: two callers lock rows in the same order); in the caller's transaction when given one. */
  async request(serverIds: readonly number[], manager?: EntityManager): Promise<void> {
    let enqueued = false;
    for (const serverId of [...new Set(serverIds)].sort((a, b) => a - b)) {
      if ((await this.requestOne(serverId, manager)).jobId !== null) enqueued = true;
    }
    if (enqueued && !manager) this.queue.nudge();
  }

  private async requestOne(serverId: number, manager?: EntityManager): Promise<{ jobId: number | null }> {
    // The row first, outside the caller's transaction: a racing first request then finds it instead of a snapshot without it.
    await this.configRow(serverId);
    const run = async (m: EntityManager) => {
      const claimed = await m
        .createQueryBuilder()
        .update(HandlerConfig)
        .set({ wantedGeneration: () => 'wanted_generation + 1', pending: true })
        .where('server_id = :serverId AND pending = :no', { serverId, no: false })
        .execute();
      if ((claimed.affected ?? 0) === 0) {
        await m.createQueryBuilder().update(HandlerConfig).set({ wantedGeneration: () => 'wanted_generation + 1' }).where('server_id = :serverId', { serverId }).execute();
        return { jobId: null };
      }
      const { job } = await this.queue.enqueue(PHP_REBUILD, { serverId }, { resourceKey: phpResourceKey(serverId), manager: m, priority: PHP_REBUILD_PRIORITY });
      return { jobId: job.id };
    };
    return manager ? run(manager) : this.dataSource.transaction(run);
  }

  /** Handlers behind the catalog with no rebuild queued (down when requested, failed a while ago, a job cancelled) get one. */
  async reconcile(now = Date.now()): Promise<number> {
    const rows = await this.dataSource
      .getRepository(HandlerConfig)
      .createQueryBuilder('c')
      .innerJoin(Server, 's', 's.id = c.serverId')
      .where("s.state <> 'down'")
      .andWhere('(c.wantedGeneration > c.appliedGeneration OR c.pending = :yes)', { yes: true })
      .getMany();
    let requested = 0;
    for (const row of rows) {
      const open = await this.dataSource.getRepository(Job).count({ where: { resourceKey: phpResourceKey(row.serverId), state: In(['ready', 'blocked', 'running']) } });
      if (open > 0) continue;
      if (row.pending) await this.dataSource.getRepository(HandlerConfig).update({ id: row.id }, { pending: false });
      if (row.wantedGeneration <= row.appliedGeneration) continue;
      if (row.lastError !== null && now - row.updatedAt.getTime() < FAILED_REBUILD_RETRY_MS) continue;
      await this.request([row.serverId]);
      requested++;
    }
    return requested;
  }

  /**
   * Whether the install's pool as the catalog has it now is what the
   * handler's php-fpm runs: the file of the generation recorded live (after
   * its reload was verified) is the render of now.
   */
  async poolState(installId: number, serverId: number): Promise<PoolState> {
    const server = await this.dataSource.getRepository(Server).findOneBy({ id: serverId });
    if (!server || !managesPhp(server, this.config)) return { state: 'not-served' };
    const quarantine = await this.dataSource.getRepository(PoolQuarantine).findOneBy({ serverId, installId });
    if (quarantine) return { state: 'quarantined', reason: quarantine.reason };
    const input = await this.loader.load(server, installId);
    const install = input.installs[0];
    if (!install) return { state: 'not-served' };
    const { files, refused } = renderPools(input);
    if (refused.length > 0) return { state: 'quarantined', reason: refused[0]!.error };
    const row = await this.dataSource.getRepository(HandlerConfig).findOneBy({ serverId });
    if (row?.lastError) {
      const open = await this.dataSource.getRepository(Job).count({ where: { resourceKey: phpResourceKey(serverId), state: In(['ready', 'blocked', 'running']) } });
      return open > 0 ? { state: 'pending' } : { state: 'failed', reason: `the last php-fpm pool rebuild of ${server.hostname} failed: ${row.lastError}` };
    }
    if (!row?.liveGeneration) return { state: 'pending' };
    const name = poolFileOf(install);
    const live = await new PoolFiles(this.access.executorFor(server), server).read(row.liveGeneration, name);
    return live !== null && live === files.get(name) ? { state: 'live' } : { state: 'pending' };
  }

  /**
   * Per handler, a mark that moves whenever a rebuild could have changed an
   * install's pool state (live generation, applied generation, last error,
   * pending): a waiter compares a pool again only when its mark moved.
   */
  async progressMarks(serverIds: readonly number[]): Promise<Map<number, string>> {
    if (serverIds.length === 0) return new Map();
    const rows = await this.dataSource.getRepository(HandlerConfig).find({ where: { serverId: In([...serverIds]) } });
    return new Map(rows.map((r) => [r.serverId, `${r.liveGeneration}|${r.appliedGeneration}|${r.pending}|${r.lastError}`]));
  }

  /** The handler's pipeline row, made on first use. */
  async configRow(serverId: number, changes: Partial<HandlerConfig> = {}, manager: EntityManager = this.dataSource.manager): Promise<HandlerConfig> {
    const repo = manager.getRepository(HandlerConfig);
    let row = await repo.findOneBy({ serverId });
    if (!row) {
      try {
        await repo.insert({ serverId });
      } catch (error) {
        // Another engine made it first; without its row, the insert's own failure is the answer.
        if (!(await repo.findOneBy({ serverId }))) throw error;
      }
      row = await repo.findOneByOrFail({ serverId });
    }
    if (Object.keys(changes).length > 0) {
      await repo.update({ id: row.id }, changes);
      Object.assign(row, changes);
    }
    return row;
  }
}
