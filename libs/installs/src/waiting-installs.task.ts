import { Injectable } from '@nestjs/common';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { RecurringTask } from '@app/queue';
import { InstallsService } from './installs.service.js';

/** How often a worker looks for waiting installs that a code group now has room for. */
export const WAITING_INSTALLS_EVERY_MS = 10_000;

/**
 * Every 10 s (queued by the cron role, run by a worker), installs accepted
 * while no code group had room get a slot if one has opened, and their
 * builds are queued. Safe on several engines at once (conditional updates,
 * one build job per install).
 */
@Injectable()
export class WaitingInstallsTask extends RecurringTask {
  constructor(
    private readonly installs: InstallsService,
  ) {
    super({ name: 'WaitingInstalls', everyMs: WAITING_INSTALLS_EVERY_MS, failure: 'looking for waiting installs failed' });
  }

  protected async tick(): Promise<void> {
    const n = await this.installs.queueWaiting();
    if (n > 0) this.logger.log(`queued the builds of ${n} install(s) that waited for a code group`);
  }
}
