/** A failure that retrying cannot fix (bad payload, missing resource): the job goes straight to dead. */
export class PermanentJobError extends Error {
  override name = 'PermanentJobError';
}

/**
 * The worker no longer holds the job: its lease expired and another worker
 * claimed it, or an operator cancelled it. The handler's signal is aborted
 * with this, and nothing this worker does can complete the job any more.
 */
export class LeaseLostError extends Error {
  override name = 'LeaseLostError';
  constructor(readonly jobId: number) {
    super(`job ${jobId}: the lease was lost (expired and reclaimed, or cancelled); work stopped`);
  }
}
