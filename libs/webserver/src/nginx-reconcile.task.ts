import { Injectable } from '@nestjs/common';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { RecurringTask } from '@app/queue';
import { NginxRebuilds } from './nginx-rebuilds.service.js';

/** How often a worker looks for dispatchers whose nginx is behind the catalog. */
export const NGINX_RECONCILE_EVERY_MS = 10_000;

/**
 * Every 10 s (a recurring task): dispatchers that are back from `down`,
 * whose rebuild failed a while ago, or whose queued rebuild vanished get a
 * rebuild. Safe on several engines at once (coalesced requests).
 */
@Injectable()
export class NginxReconcileTask extends RecurringTask {
  constructor(
    private readonly rebuilds: NginxRebuilds,
  ) {
    super({ name: 'NginxReconcile', everyMs: NGINX_RECONCILE_EVERY_MS, failure: 'looking for dispatchers behind the catalog failed' });
  }

  protected async tick(): Promise<void> {
    const n = await this.rebuilds.reconcile();
    if (n > 0) this.logger.log(`requested the nginx rebuild of ${n} dispatcher(s) behind the catalog`);
  }
}
