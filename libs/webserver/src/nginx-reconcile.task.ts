import { Inject, Injectable, Logger, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { ENGINE_CONFIG, hasRole, type EngineConfig } from '@app/config';
import { NginxRebuilds } from './nginx-rebuilds.service.js';

/** How often a worker looks for dispatchers whose nginx is behind the catalog. */
export const NGINX_RECONCILE_EVERY_MS = 10_000;

/**
 * On engines with the worker role: dispatchers that are back from `down`,
 * whose rebuild failed a while ago, or whose queued rebuild vanished get a
 * rebuild. Safe on several engines at once (coalesced requests).
 */
@Injectable()
export class NginxReconcileTask implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('NginxReconcile');
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;

  constructor(
    private readonly rebuilds: NginxRebuilds,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
  ) {}

  onApplicationBootstrap(): void {
    if (!hasRole(this.config, 'worker')) return;
    this.timer = setInterval(() => {
      if (this.running) return;
      this.running = this.rebuilds
        .reconcile()
        .then((n) => {
          if (n > 0) this.logger.log(`requested the nginx rebuild of ${n} dispatcher(s) behind the catalog`);
        })
        .catch((error: unknown) => this.logger.error({ err: error }, 'looking for dispatchers behind the catalog failed'))
        .finally(() => (this.running = null));
    }, NGINX_RECONCILE_EVERY_MS);
    this.timer.unref();
  }

  async beforeApplicationShutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }
}
