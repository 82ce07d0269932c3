import { Module, type DynamicModule } from '@nestjs/common';
import { WebserverModule } from '@app/webserver';
import { SiteAccounting } from './site-accounting.service.js';
import { SiteAccountingTask } from './site-accounting.task.js';
import { UsageController } from './usage.controller.js';

/** Site accounting: the dispatchers' access logs counted per install, hostname and day (task), and read back (API). */
@Module({})
export class AccountingModule {
  static forRoot(options: { http: boolean }): DynamicModule {
    return {
      module: AccountingModule,
      imports: [WebserverModule],
      controllers: options.http ? [UsageController] : [],
      providers: [SiteAccounting, SiteAccountingTask],
      exports: [SiteAccounting],
    };
  }
}
