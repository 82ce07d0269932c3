import { Inject, Injectable } from '@nestjs/common';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { RecurringTask, type TaskRunContext } from '@app/queue';
import { BindMounts } from './bind-mounts.service.js';

/** The seed's cron_mount: every server's bind mounts made its startup_mounts rows, every minute (the first pass after an engine starts covers a reboot). */
@Injectable()
export class BindMountsTask extends RecurringTask {
  constructor(private readonly mounts: BindMounts, @Inject(ENGINE_CONFIG) config: EngineConfig) {
    super({ name: 'BindMounts', everyMs: 60_000, enabled: config.ftp.enabled, failure: 'the bind mounts failed' });
  }

  protected async tick(context: TaskRunContext): Promise<void> {
    await this.mounts.apply({ log: (line) => context.log(line) });
  }
}
