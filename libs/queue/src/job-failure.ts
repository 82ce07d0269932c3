import { redactSecrets } from '@app/common';
import { retryDelayMs } from './backoff.js';
import type { JobRepository } from './job.repository.js';
import { JobDeferredError, NEEDS_ATTENTION, PermanentJobError } from './queue.errors.js';

/** A run of a job that failed, as its runner holds it (fenced writes only). */
export interface FailedRun {
  id: number;
  fence: number;
  /** The attempt that failed (counted at claim). */
  attempts: number;
  maxAttempts: number;
  resourceKey: string | null;
}

/**
 * Ends a failed run's job by its error, as every runner of jobs must:
 * deferred (JobDeferredError: its attempt given back), dead (a permanent
 * error, one that needs attention, or the last attempt) or retried after its
 * backoff. `message` is the error as the job shows it, secrets masked.
 * A lost lease is the caller's to check first: these writes are fenced anyway.
 */
export async function settleFailedRun(
  jobs: JobRepository,
  run: FailedRun,
  error: unknown,
  message: string,
  backoff: { baseMs: number; maxMs: number },
): Promise<'deferred' | 'dead' | 'retry'> {
  if (error instanceof JobDeferredError) {
    await jobs.defer(run.id, run.fence, redactSecrets(`waiting: ${error.message}`), error.delayMs, run.resourceKey);
    return 'deferred';
  }
  if (error instanceof PermanentJobError && error.needsAttention) {
    await jobs.bury(run.id, run.fence, NEEDS_ATTENTION + message, run.resourceKey);
    return 'dead';
  }
  if (error instanceof PermanentJobError || run.attempts >= run.maxAttempts) {
    await jobs.bury(run.id, run.fence, error instanceof PermanentJobError ? message : `${message} (attempt ${run.attempts} of ${run.maxAttempts})`, run.resourceKey);
    return 'dead';
  }
  await jobs.retryLater(run.id, run.fence, message, retryDelayMs(run.attempts, backoff), run.resourceKey);
  return 'retry';
}
