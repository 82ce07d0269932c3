import { Module, type DynamicModule } from '@nestjs/common';
import { MailModule } from '@app/mail';
import { IncidentsController } from './incidents.controller.js';
import { IpPoolLowWater, IpPoolLowWaterTask } from './ip-pool-low-water.js';
import { SiteHealth } from './site-health.service.js';
import { SiteHealthTask } from './site-health.task.js';

/** Monitoring tasks: site health (every live site probed through its dispatchers; incidents opened, mailed and closed) and the IP pools' low water. */
@Module({})
export class SiteHealthModule {
  static forRoot(options: { http: boolean }): DynamicModule {
    return {
      module: SiteHealthModule,
      // Global: /health reads the IP pools' low water.
      global: true,
      imports: [MailModule],
      controllers: options.http ? [IncidentsController] : [],
      providers: [SiteHealth, SiteHealthTask, IpPoolLowWater, IpPoolLowWaterTask],
      exports: [SiteHealth, IpPoolLowWater],
    };
  }
}
