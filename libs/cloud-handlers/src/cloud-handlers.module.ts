import { Module, type DynamicModule } from '@nestjs/common';
import { DatabasesModule } from '@app/databases';
import { MailModule } from '@app/mail';
import { WebserverModule } from '@app/webserver';
import { CloudLeases, CloudLeaseTask } from './cloud-leases.service.js';
import { CloudServerCheck } from './cloud-server-check.service.js';
import { CloudServerJobs } from './cloud-server.jobs.js';
import { CloudServersController } from './cloud-servers.controller.js';
import { CloudServersService } from './cloud-servers.service.js';
import { HandlerAddJob } from './handler-add.job.js';
import { HandlerRemoveJob } from './handler-remove.job.js';
import { HandlerSteps } from './handler-steps.js';
import { InstallHandlersController } from './install-handlers.controller.js';
import { InstallHandlersService } from './install-handlers.service.js';
import { TrafficService } from './traffic.service.js';

/**
 * The design card's cloud-handler module (the seed's cloud_manager): cloud
 * servers' check, lease, drain and removal; an install's handlers, weights
 * and clouds only. `jobs: false` (the CLI) leaves out the job handlers and
 * the lease task, which need the installs' build steps and run in engines.
 */
@Module({})
export class CloudHandlersModule {
  static forRoot(options: { http: boolean; jobs: boolean }): DynamicModule {
    const services = [TrafficService, InstallHandlersService, CloudServersService, CloudServerCheck];
    return {
      module: CloudHandlersModule,
      imports: [DatabasesModule, MailModule, WebserverModule],
      controllers: options.http ? [InstallHandlersController, CloudServersController] : [],
      providers: [...services, ...(options.jobs ? [HandlerSteps, HandlerAddJob, HandlerRemoveJob, CloudServerJobs, CloudLeases, CloudLeaseTask] : [])],
      exports: [InstallHandlersService, CloudServersService, CloudServerCheck, ...(options.jobs ? [CloudLeases, HandlerAddJob, HandlerRemoveJob] : [])],
    };
  }
}
