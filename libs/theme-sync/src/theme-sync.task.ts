import { Injectable } from '@nestjs/common';
import { RecurringTask, type TaskRunContext } from '@app/queue';
import { ThemeSync } from './theme-sync.service.js';

/** The seed's cron_slave_sync: copied theme and asset paths from each install's master to its other servers, every minute, where they changed. */
@Injectable()
export class ThemeSyncTask extends RecurringTask {
  constructor(private readonly themes: ThemeSync) {
    super({ name: 'ThemeSync', everyMs: 60_000, failure: 'the theme sync run failed' });
  }

  protected async tick(context: TaskRunContext): Promise<void> {
    await this.themes.run({ signal: context.signal, log: (line) => context.log(line) });
  }
}
