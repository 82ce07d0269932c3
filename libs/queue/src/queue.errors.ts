/** Marks the last error of a dead job that waits for an operator (see PermanentJobError.needsAttention). */
export const NEEDS_ATTENTION = 'needs attention: ';

/** A failure that retrying cannot fix (bad payload, missing resource): the job goes straight to dead. */
export class PermanentJobError extends Error {
  override name = 'PermanentJobError';
  /**
   * True when the failure left something an operator must look at (a saga
   * whose compensation failed): the job is kept, reported by /health and
   * logged as an error, and never retried blindly.
   */
  readonly needsAttention: boolean = false;
}

/**
 * The worker no longer holds the job: its lease expired and another worker
 * claimed it, or an operator cancelled it. The handler's signal is aborted
 * with this, and nothing this worker does can complete the job any more.
 */
export class LeaseLostError extends Error {
  override name = 'LeaseLostError';
  constructor(
    readonly jobId: number,
    why = 'expired and reclaimed, or cancelled',
  ) {
    super(`job ${jobId}: the lease was lost (${why}); work stopped`);
  }
}

/**
 * The job cannot go on yet and waits for other work (a step waiting for the
 * nginx rebuild that includes its change): it goes back to the queue after
 * `delayMs` without using up an attempt, and frees its worker slot meanwhile.
 */
export class JobDeferredError extends Error {
  override name = 'JobDeferred';
  constructor(message: string, readonly delayMs: number) {
    super(message);
  }
}
