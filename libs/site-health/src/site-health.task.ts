import { Injectable } from '@nestjs/common';
import { RecurringTask, type TaskRunContext } from '@app/queue';
import { SiteHealth } from './site-health.service.js';

/** The seed's cron_slave_widgets: every live site through its dispatchers, every minute. */
@Injectable()
export class SiteHealthTask extends RecurringTask {
  constructor(private readonly health: SiteHealth) {
    super({ name: 'SiteHealth', everyMs: 60_000, failure: 'the site health round failed' });
  }

  protected async tick(context: TaskRunContext): Promise<void> {
    await this.health.round({ signal: context.signal, log: (line) => context.log(line) });
  }
}
