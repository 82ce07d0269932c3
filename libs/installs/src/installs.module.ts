import { FtpModule } from '@app/ftp';
import { Module, type DynamicModule } from '@nestjs/common';
import { CodeGroupPins, CodeReleases } from '@app/codebases';
import { DatabasesModule } from '@app/databases';
import { MailModule } from '@app/mail';
import { WebserverModule } from '@app/webserver';
import { InstallBuildJob } from './build-saga/install-build.job.js';
import { InstallBuildSteps } from './build-saga/build-steps.js';
import { InstallUsers } from './build-saga/install-users.js';
import { InstallValues } from './build-saga/install-values.js';
import { InstallConfigJob } from './build-saga/install-config.job.js';
import { CustomerCodeGroupPins } from './code-group-pins.adapter.js';
import { InstallCredentials } from './install-credentials.service.js';
import { InstallRewritesModule } from './install-rewrites.module.js';
import { InstallsController } from './installs.controller.js';
import { InstallsService } from './installs.service.js';
import { PinRulesController } from './pin-rules.controller.js';
import { PinRulesService } from './pin-rules.service.js';
import { PrepareService } from './prepare.service.js';
import { WaitingInstallsTask } from './waiting-installs.task.js';

/** Installs: the order hook, prepare, and the build saga's job. */
@Module({})
export class InstallsModule {
  static forRoot(options: { http: boolean }): DynamicModule {
    return {
      module: InstallsModule,
      // CodeReleases (stateless) is its own here: the build reads a release's manifest without the code groups' module.
      // Health reads the installs waiting for a code group; the code groups' controller pins a group for a customer through CodeGroupPins.
      global: true,
      imports: [DatabasesModule, MailModule, WebserverModule, InstallRewritesModule, FtpModule],
      controllers: options.http ? [InstallsController, PinRulesController] : [],
      providers: [PrepareService, InstallBuildSteps, InstallValues, InstallUsers, InstallConfigJob, InstallBuildJob, InstallsService, InstallCredentials, PinRulesService, WaitingInstallsTask, CodeReleases, { provide: CodeGroupPins, useClass: CustomerCodeGroupPins }],
      exports: [PrepareService, InstallBuildSteps, InstallValues, InstallUsers, InstallConfigJob, InstallBuildJob, InstallsService, InstallCredentials, PinRulesService, CodeGroupPins],
    };
  }
}
