import { Injectable } from '@nestjs/common';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { RecurringTask } from '@app/queue';
import { PoolRebuilds } from './pool-rebuilds.service.js';

/** How often a worker looks for handlers whose pools are behind the catalog. */
export const POOL_RECONCILE_EVERY_MS = 10_000;

/**
 * Every 10 s (a recurring task): handlers back from `down`, whose pool
 * rebuild failed a while ago, or whose queued rebuild vanished get a
 * rebuild (as NginxReconcileTask does for dispatchers).
 */
@Injectable()
export class PoolReconcileTask extends RecurringTask {
  constructor(
    private readonly rebuilds: PoolRebuilds,
  ) {
    super({ name: 'PoolReconcile', everyMs: POOL_RECONCILE_EVERY_MS, failure: 'looking for handlers whose pools are behind the catalog failed' });
  }

  protected async tick(): Promise<void> {
    const n = await this.rebuilds.reconcile();
    if (n > 0) this.logger.log(`requested the pool rebuild of ${n} handler(s) behind the catalog`);
  }
}
