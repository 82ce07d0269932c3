import { redactSecrets } from '@app/common';
import type { JobContext } from './job-handler.decorator.js';
import type { JobRepository, LogEntry } from './job.repository.js';

/**
 * Buffers a job's output and writes it in batches, so a chatty step costs a
 * few inserts a second rather than one per line.
 */
export class JobOutput {
  private pending: LogEntry[] = [];
  private flushing: Promise<void> = Promise.resolve();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly jobs: JobRepository,
    private readonly jobId: number,
    private readonly attempt: number,
    /** Told when a batch could not be written (the job goes on: its output is best effort, and the loss is reported here). */
    private readonly onError: (error: unknown) => void,
    flushEveryMs = 250,
  ) {
    this.timer = setInterval(() => void this.flush(), flushEveryMs);
    this.timer.unref();
  }

  /** What a handler is given for this claim of the job: its lines go to this output. */
  context(claim: { maxAttempts: number; fence: number }, signal: AbortSignal): JobContext {
    return {
      jobId: this.jobId,
      attempt: this.attempt,
      maxAttempts: claim.maxAttempts,
      fence: claim.fence,
      signal,
      log: (line) => this.write('info', line),
      error: (line) => this.write('error', line),
    };
  }

  /** Buffers the text, every secret of the job's scope masked (a statement quoting a password). */
  write(level: LogEntry['level'], text: string): void {
    for (const line of redactSecrets(text).split('\n')) this.pending.push({ level, line: line.slice(0, 8000) });
  }

  /** Writes what is buffered; calls are chained so lines keep their order. */
  flush(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    this.flushing = this.flushing
      .then(() => this.jobs.appendLogs(this.jobId, this.attempt, batch))
      // Output is best effort: a catalog hiccup must not fail the job itself, but it is reported.
      .catch((error: unknown) => this.onError(error));
    return this.flushing;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }
}
