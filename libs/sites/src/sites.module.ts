import { Module, type DynamicModule } from '@nestjs/common';
import { ChangeCodebaseSteps, HomeServers } from '@app/codebase-update';
import { CodeReleases } from '@app/codebases';
import { DatabasesModule } from '@app/databases';
import { DnsModule } from '@app/dns';
import { WebserverModule } from '@app/webserver';
import { DowngradeController } from './downgrade.controller.js';
import { DowngradeJob } from './downgrade.job.js';
import { DowngradeService } from './downgrade.service.js';
import { DowngradeSteps } from './downgrade.steps.js';
import { HostnameChangeJob } from './hostname-change.job.js';
import { HostnameChangeService } from './hostname-change.service.js';
import { SiteAddJob } from './site-add.job.js';
import { SiteAddService } from './site-add.service.js';
import { SiteCatalog } from './site-catalog.js';
import { SiteEffects } from './site-effects.js';
import { SitePlans } from './site-plans.js';
import { SiteRemoveJob } from './site-remove.job.js';
import { SiteRemoveService } from './site-remove.service.js';
import { SiteRequests } from './site-requests.js';
import { SitesController } from './sites.controller.js';

/**
 * Issue 17's operations on a live install's sites and license: add a
 * site, remove one, change a hostname, downgrade paid to free. Each is a
 * request (checks, a plan, claims in the catalog, an audit event) and a
 * saga job on `install:<id>`. The downgrade reuses the codebase change's
 * steps (its own instances: they are stateless). `jobs: false` (the CLI)
 * leaves out the job handlers, which run in engines.
 */
@Module({})
export class SitesModule {
  static forRoot(options: { http: boolean; jobs: boolean }): DynamicModule {
    return {
      module: SitesModule,
      imports: [DatabasesModule, WebserverModule, DnsModule],
      controllers: options.http ? [SitesController, DowngradeController] : [],
      providers: [
        SiteCatalog, SitePlans, SiteRequests, SiteAddService, SiteRemoveService, HostnameChangeService, DowngradeService, HomeServers, CodeReleases,
        ...(options.jobs ? [SiteEffects, ChangeCodebaseSteps, SiteAddJob, SiteRemoveJob, HostnameChangeJob, DowngradeSteps, DowngradeJob] : []),
      ],
      exports: [SiteAddService, SiteRemoveService, HostnameChangeService, DowngradeService],
    };
  }
}
