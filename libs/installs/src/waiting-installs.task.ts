import { Inject, Injectable, Logger, type OnApplicationBootstrap, type BeforeApplicationShutdown } from '@nestjs/common';
import { ENGINE_CONFIG, hasRole, type EngineConfig } from '@app/config';
import { InstallsService } from './installs.service.js';

/** How often a worker looks for waiting installs that a code group now has room for. */
export const WAITING_INSTALLS_EVERY_MS = 10_000;

/**
 * On engines with the worker role: every few seconds, installs accepted
 * while no code group had room get a slot if one has opened, and their
 * builds are queued. Safe on several engines at once (conditional updates,
 * one build job per install).
 */
@Injectable()
export class WaitingInstallsTask implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('WaitingInstalls');
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;

  constructor(
    private readonly installs: InstallsService,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
  ) {}

  onApplicationBootstrap(): void {
    if (!hasRole(this.config, 'worker')) return;
    this.timer = setInterval(() => {
      if (this.running) return;
      this.running = this.installs
        .queueWaiting()
        .then((n) => {
          if (n > 0) this.logger.log(`queued the builds of ${n} install(s) that waited for a code group`);
        })
        .catch((error: unknown) => this.logger.error({ err: error }, 'looking for waiting installs failed'))
        .finally(() => (this.running = null));
    }, WAITING_INSTALLS_EVERY_MS);
    this.timer.unref();
  }

  async beforeApplicationShutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }
}
