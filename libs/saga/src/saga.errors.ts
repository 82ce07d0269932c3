import { PermanentJobError } from '@app/queue';

/** The saga failed before its pivot and every step that ran was undone: nothing is left behind. */
export class SagaCompensatedError extends PermanentJobError {
  override name = 'SagaCompensated';
  constructor(readonly saga: string, readonly step: string, readonly reason: string) {
    super(`${saga}: step ${step} failed and every earlier step was compensated: ${reason}`);
  }
}

/**
 * A compensation failed: the saga stops where it is, is never retried blindly,
 * and waits for an operator (who fixes the cause, then retries the job).
 */
export class SagaNeedsAttentionError extends PermanentJobError {
  override name = 'SagaNeedsAttention';
  override readonly needsAttention = true;
  constructor(readonly saga: string, readonly step: string, readonly reason: string) {
    super(`${saga}: compensating step ${step} failed: ${reason}`);
  }
}

/** A step after the pivot failed: retried forward by the queue, never compensated. */
export class SagaForwardRetryError extends Error {
  override name = 'SagaForwardRetry';
  constructor(readonly saga: string, readonly step: string, readonly reason: string) {
    super(`${saga}: step ${step} (after the pivot) failed and will be retried forward: ${reason}`);
  }
}
