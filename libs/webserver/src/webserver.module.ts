import { Module } from '@nestjs/common';
import { DispatcherInputLoader } from './dispatcher-input.loader.js';
import { NginxPipeline } from './nginx-pipeline.service.js';
import { NginxRebuildJob } from './nginx-rebuild.job.js';
import { NginxRebuilds } from './nginx-rebuilds.service.js';
import { NginxReconcileTask } from './nginx-reconcile.task.js';
import { SiteProbe } from './site-probe.service.js';

/** The nginx config pipeline: render from the catalog, stage, test, swap, reload; coalesced rebuilds per dispatcher. */
@Module({
  providers: [DispatcherInputLoader, NginxPipeline, NginxRebuilds, NginxRebuildJob, NginxReconcileTask, SiteProbe],
  exports: [DispatcherInputLoader, NginxPipeline, NginxRebuilds, SiteProbe],
})
export class WebserverModule {}
