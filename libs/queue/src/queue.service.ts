import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import type { Job } from '@app/catalog';
import type { JobKind } from './job-kind.js';
import { JobRepository } from './job.repository.js';

export interface EnqueueOptions {
  /** The same key returns the existing job instead of a second one. */
  idempotencyKey?: string;
  /** At most one running job per key (`install:42`); the others wait blocked. */
  resourceKey?: string;
  /** Lower runs first; 0 by default. */
  priority?: number;
  delayMs?: number;
  parentId?: number;
  /** The caller's transaction: the job exists exactly when the caller's rows do. */
  manager?: EntityManager;
}

/** What producers use to put work on the queue. */
@Injectable()
export class QueueService {
  constructor(private readonly jobs: JobRepository) {}

  async enqueue<P extends object>(kind: JobKind<P>, payload: P, options: EnqueueOptions = {}): Promise<{ job: Job; created: boolean }> {
    return this.jobs.enqueue(
      {
        kind: kind.name,
        payload,
        maxAttempts: kind.options.maxAttempts,
        priority: options.priority,
        delayMs: options.delayMs,
        idempotencyKey: options.idempotencyKey ?? null,
        resourceKey: options.resourceKey ?? null,
        parentId: options.parentId ?? null,
      },
      options.manager,
    );
  }
}
