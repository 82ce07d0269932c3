import { Module } from '@nestjs/common';
import { DispatcherInputLoader } from './dispatcher-input.loader.js';
import { NginxPipeline } from './nginx-pipeline.service.js';
import { NginxRebuildJob } from './nginx-rebuild.job.js';
import { NginxRebuilds } from './nginx-rebuilds.service.js';
import { NginxReconcileTask } from './nginx-reconcile.task.js';
import { SiteProbe } from './site-probe.service.js';
import { PoolInputLoader } from './php-pools/pool-input.loader.js';
import { PoolPipeline } from './php-pools/pool-pipeline.service.js';
import { PoolRebuildJob } from './php-pools/pool-rebuild.job.js';
import { PoolRebuilds } from './php-pools/pool-rebuilds.service.js';
import { PoolReconcileTask } from './php-pools/pool-reconcile.task.js';

/** The nginx config pipeline and the php-fpm pool pipeline: render from the catalog, stage, test, swap, reload; coalesced rebuilds per dispatcher and per handler. */
@Module({
  providers: [DispatcherInputLoader, NginxPipeline, NginxRebuilds, NginxRebuildJob, NginxReconcileTask, SiteProbe, PoolInputLoader, PoolPipeline, PoolRebuilds, PoolRebuildJob, PoolReconcileTask],
  exports: [DispatcherInputLoader, NginxPipeline, NginxRebuilds, SiteProbe, PoolInputLoader, PoolPipeline, PoolRebuilds],
})
export class WebserverModule {}
