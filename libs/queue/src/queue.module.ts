import { Module, type DynamicModule } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { JobHandlerRegistry } from './job-handler.registry.js';
import { JobRepository } from './job.repository.js';
import { JobsAdminService } from './jobs-admin.service.js';
import { JobsController } from './jobs.controller.js';
import { NoopJobHandler } from './noop.job.js';
import { QUEUE_WORKER_OPTIONS, QueueWorker, type QueueWorkerOptions } from './queue-worker.service.js';
import { QueueService } from './queue.service.js';
import { QueueGauges } from './queue-gauges.js';
import { QueueWakeups } from './queue-wakeups.js';

/** The durable queue on the catalog: producers everywhere, a worker where ENGINE_ROLES has `worker`. */
@Module({})
export class QueueModule {
  static forRoot(options: { worker: QueueWorkerOptions | null; http?: boolean }): DynamicModule {
    return {
      module: QueueModule,
      global: true,
      imports: [DiscoveryModule],
      controllers: options.http ? [JobsController] : [],
      providers: [
        JobRepository,
        QueueService,
        QueueWakeups,
        JobsAdminService,
        QueueGauges,
        ...(options.worker
          ? [JobHandlerRegistry, NoopJobHandler, QueueWorker, { provide: QUEUE_WORKER_OPTIONS, useValue: options.worker }]
          : []),
      ],
      exports: [JobRepository, QueueService, JobsAdminService, ...(options.worker ? [QueueWorker] : [])],
    };
  }
}
