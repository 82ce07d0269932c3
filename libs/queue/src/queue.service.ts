import { Injectable, Optional } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import type { Job } from '@app/catalog';
import type { JobKind } from './job-kind.js';
import { JobRepository } from './job.repository.js';
import { QueueWakeups } from './queue-wakeups.js';

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
  private readonly listeners = new Set<() => void>();

  constructor(
    private readonly jobs: JobRepository,
    @Optional() private readonly wakeups?: QueueWakeups,
  ) {}

  /** Called after each enqueue in this process (a worker here wakes to claim at once instead of at its next poll). */
  onEnqueued(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async enqueue<P extends object>(kind: JobKind<P>, payload: P, options: EnqueueOptions = {}): Promise<{ job: Job; created: boolean }> {
    const result = await this.jobs.enqueue(
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
    // In the caller's transaction the job is not visible yet: the caller nudges once it has committed.
    if (!options.manager) this.nudge();
    return result;
  }

  /**
   * A job made already claimed by `owner` (see JobRepository.insertHeld), in
   * the caller's transaction; null when its resource key is held by a
   * running job or its idempotency key exists.
   */
  enqueueHeld<P extends object>(kind: JobKind<P>, payload: P, options: { resourceKey: string; idempotencyKey?: string; parentId?: number; owner: string; leaseMs: number; manager: EntityManager }): Promise<{ id: number; fence: number; attempt: number } | null> {
    return this.jobs.insertHeld(
      { kind: kind.name, payload, maxAttempts: kind.options.maxAttempts, idempotencyKey: options.idempotencyKey ?? null, resourceKey: options.resourceKey, parentId: options.parentId ?? null },
      options.owner,
      options.leaseMs,
      options.manager,
    );
  }

  /** Wakes this process's worker (if any) and the other processes' workers to claim now: after committing a transaction that enqueued jobs. */
  nudge(): void {
    for (const listener of this.listeners) listener();
    this.wakeups?.send();
  }
}
