import { Injectable } from '@nestjs/common';
import { RecurringTask, type TaskRunContext } from '@app/queue';
import { SiteAccounting } from './site-accounting.service.js';

/** The seed's cron_site_accounting: every 5 minutes, each dispatcher's access log from where it stopped. */
@Injectable()
export class SiteAccountingTask extends RecurringTask {
  constructor(private readonly accounting: SiteAccounting) {
    super({ name: 'SiteAccounting', schedule: '*/5 * * * *', failure: 'site accounting failed' });
  }

  protected async tick(context: TaskRunContext): Promise<void> {
    await this.accounting.run((line) => context.log(line));
  }
}
