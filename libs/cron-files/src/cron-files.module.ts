import { Module } from '@nestjs/common';
import { CodeReleases } from '@app/codebases';
import { CronFiles } from './cron-files.service.js';
import { CronFilesTask } from './cron-files.task.js';

/** Installs' cron files: each server's checked against the catalog and repaired (the CronFiles task). */
@Module({
  // CodeReleases (stateless): a release's recorded manifest, as the installs module reads it.
  providers: [CronFiles, CronFilesTask, CodeReleases],
  exports: [CronFiles],
})
export class CronFilesModule {}
