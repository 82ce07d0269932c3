import { Module } from '@nestjs/common';
import { CronFiles } from './cron-files.service.js';
import { CronFilesTask } from './cron-files.task.js';

/** Installs' cron files: each server's checked against the catalog and repaired (the CronFiles task). */
@Module({
  providers: [CronFiles, CronFilesTask],
  exports: [CronFiles],
})
export class CronFilesModule {}
