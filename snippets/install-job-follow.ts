import type { JobsAdminService } from '@app/queue';
import { out, SnippetError } from './cli-output.js';

const ENDED = ['done', 'dead', 'cancelled'];

/** Prints a job's output as it comes until it ends; a job that did not end done is an error. */
export async function followJob(jobs: JobsAdminService, jobId: number, timeoutS: number): Promise<void> {
  const deadline = Date.now() + timeoutS * 1000;
  let after = 0;
  for (;;) {
    const job = await jobs.get(jobId);
    for (const line of await jobs.output(jobId, after)) {
      after = line.id;
      out(`${line.level === 'error' ? 'ERROR ' : ''}${line.line}`);
    }
    if (ENDED.includes(job.state)) {
      if (job.state !== 'done') throw new SnippetError(`job ${jobId} ended ${job.state}: ${job.lastError ?? 'no error recorded'}`);
      return;
    }
    if (Date.now() > deadline) throw new SnippetError(`job ${jobId} still ${job.state} after ${timeoutS} s (is a worker running?); follow it with rerun-queue-item ${jobId} --follow`);
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}

/** `--id N`: a positive install id. */
export function parseInstallId(value: string): number {
  if (!/^\d{1,10}$/.test(value) || Number(value) < 1 || Number(value) > 2_147_483_647) throw new SnippetError('--id is an install id (a positive number)');
  return Number(value);
}

export function parseTimeout(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 86_400) throw new SnippetError('--timeout must be a number of seconds');
  return n;
}
