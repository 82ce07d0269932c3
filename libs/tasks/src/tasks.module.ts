import { Global, Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { TaskRegistry } from './task-registry.js';
import { TaskRunJob } from './task-run.job.js';
import { TaskScheduler } from './task-scheduler.service.js';
import { TaskStatus } from './task-status.service.js';

/**
 * Recurring tasks on the queue: the registry of the tasks this engine's
 * modules declare, the scheduler (engines with the `cron` role), the run
 * job (workers) and the tasks' status from the catalog.
 */
@Global()
@Module({
  imports: [DiscoveryModule],
  providers: [TaskRegistry, TaskRunJob, TaskScheduler, TaskStatus],
  exports: [TaskRegistry, TaskScheduler, TaskStatus],
})
export class TasksModule {}
