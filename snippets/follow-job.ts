import type { JobsAdminService } from '@app/queue';
import { SnippetError } from './cli-output.js';

const FINISHED = ['done', 'dead', 'cancelled'];

/**
 * Streams a job's output to `emit` until it ends, then says how it ended;
 * throws SnippetError (exit 1) unless it ended done, or when `timeoutS`
 * passes first (the job goes on).
 */
export async function followJob(jobs: JobsAdminService, id: number, emit: (line: string) => void, options: { timeoutS?: number; logFile?: string } = {}): Promise<void> {
  const startedAt = Date.now();
  let after = 0;
  let warned = false;
  const drain = async () => {
    for (const line of await jobs.output(id, after)) {
      after = line.id;
      emit(`[attempt ${line.attempt}] ${line.level === 'error' ? 'ERROR ' : ''}${line.line}`);
    }
  };
  for (;;) {
    await drain();
    const job = await jobs.get(id);
    if (FINISHED.includes(job.state)) {
      // Lines written between the last read and the final state.
      await drain();
      emit(`job ${id} ${job.state} after ${job.attempts} attempt(s)${job.lastError ? `: ${job.lastError}` : ''}`);
      if (job.state !== 'done') throw new SnippetError(`job ${id} ended ${job.state}${options.logFile ? `; the log is in ${options.logFile}` : ''}`);
      return;
    }
    if (!warned && job.state === 'ready' && Date.now() - startedAt > 15_000) {
      warned = true;
      emit('no worker has started it yet: is an engine with the worker role running on this catalog?');
    }
    if (options.timeoutS && Date.now() - startedAt > options.timeoutS * 1000) {
      throw new SnippetError(`job ${id} still ${job.state} after ${options.timeoutS} s; it goes on, follow it with rerun-queue-item ${id} --follow`);
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}
