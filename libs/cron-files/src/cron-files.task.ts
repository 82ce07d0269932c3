import { Injectable } from '@nestjs/common';
import { RecurringTask, type TaskRunContext } from '@app/queue';
import { CronFiles } from './cron-files.service.js';

/** The seed's cron_installs: every server's install cron files checked against the catalog every 5 minutes, drift repaired. */
@Injectable()
export class CronFilesTask extends RecurringTask {
  constructor(private readonly crons: CronFiles) {
    super({ name: 'CronFiles', schedule: '*/5 * * * *', failure: 'the cron files check failed' });
  }

  protected async tick(context: TaskRunContext): Promise<void> {
    await this.crons.run({ signal: context.signal, log: (line) => context.log(line) });
  }
}
