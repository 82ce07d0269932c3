import { Module, type DynamicModule } from '@nestjs/common';
import { MailModule } from '@app/mail';
import { IncidentsController } from './incidents.controller.js';
import { SiteHealth } from './site-health.service.js';
import { SiteHealthTask } from './site-health.task.js';

/** Site health: every live site probed through its dispatchers each minute; incidents opened, mailed and closed. */
@Module({})
export class SiteHealthModule {
  static forRoot(options: { http: boolean }): DynamicModule {
    return {
      module: SiteHealthModule,
      imports: [MailModule],
      controllers: options.http ? [IncidentsController] : [],
      providers: [SiteHealth, SiteHealthTask],
      exports: [SiteHealth],
    };
  }
}
