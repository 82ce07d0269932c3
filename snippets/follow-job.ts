import type { JobsAdminService } from '@app/queue';
import { out, SnippetError } from './cli-output.js';

const FINISHED = ['done', 'dead', 'cancelled'];

export interface FollowJobOptions {
  /** Stop following after this long (the job goes on); none: until it ends. */
  timeoutS?: number;
  /** Where the output is also written, named in the error of a job that did not end done. */
  logFile?: string;
  /** Prefix each line with its attempt (`[attempt 2] ...`): for jobs run again. */
  attempts?: boolean;
}

/**
 * Streams a job's output to `emit` (stdout by default) until it ends, then
 * says how it ended; throws SnippetError (exit 1) unless it ended done, or
 * when `timeoutS` passes first (the job goes on). The one follower every
 * snippet that queues a job uses.
 */
export async function followJob(jobs: JobsAdminService, id: number, options: FollowJobOptions = {}, emit: (line: string) => void = out): Promise<void> {
  const startedAt = Date.now();
  let after = 0;
  let warned = false;
  const drain = async () => {
    for (const line of await jobs.output(id, after)) {
      after = line.id;
      emit(`${options.attempts ? `[attempt ${line.attempt}] ` : ''}${line.level === 'error' ? 'ERROR ' : ''}${line.line}`);
    }
  };
  for (;;) {
    await drain();
    const job = await jobs.get(id);
    if (FINISHED.includes(job.state)) {
      // Lines written between the last read and the final state.
      await drain();
      emit(`job ${id} ${job.state} after ${job.attempts} attempt(s)${job.lastError ? `: ${job.lastError}` : ''}`);
      if (job.state !== 'done') throw new SnippetError(`job ${id} ended ${job.state}: ${job.lastError ?? 'no error recorded'}${options.logFile ? `; the log is in ${options.logFile}` : ''}`);
      return;
    }
    if (!warned && job.state === 'ready' && Date.now() - startedAt > 15_000) {
      warned = true;
      emit('no worker has started it yet: is an engine with the worker role running on this catalog?');
    }
    if (options.timeoutS && Date.now() - startedAt > options.timeoutS * 1000) {
      throw new SnippetError(`job ${id} still ${job.state} after ${options.timeoutS} s (is a worker running?); it goes on, follow it with rerun-queue-item ${id} --follow`);
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}

/** `--timeout <seconds>`: 1 to 86,400. */
export function parseTimeout(value: string): number {
  const n = Number(value);
  if (!/^\d{1,6}$/.test(value) || !Number.isInteger(n) || n < 1 || n > 86_400) throw new SnippetError('--timeout must be a number of seconds (1 to 86400)');
  return n;
}
