import { Command, CommandRunner, Option } from 'nest-commander';
import { JOB_STATES, type JobState } from '@app/catalog';
import { JobsAdminService, JobView } from '@app/queue';
import { out, SnippetError, table } from './cli-output.js';
import { cliActor } from './token-create.command.js';

export function jobId(text: string | undefined): number {
  if (!/^\d{1,9}$/.test(text ?? '')) throw new SnippetError('the job id is a number (see jobs:list)');
  return Number(text);
}

@Command({ name: 'jobs:list', description: 'list queue jobs, newest first (--state dead, --kind install.build)' })
export class JobsListCommand extends CommandRunner {
  constructor(private readonly jobs: JobsAdminService) {
    super();
  }

  async run(_args: string[], options: { state?: JobState; kind?: string; limit?: number }): Promise<void> {
    const jobs = await this.jobs.list(options);
    out(
      table(
        ['id', 'kind', 'state', 'attempts', 'resource', 'updated', 'last error'],
        jobs.map((j) => [
          j.id,
          j.kind,
          j.state,
          `${j.attempts}/${j.maxAttempts}`,
          j.resourceKey,
          j.updatedAt.toISOString(),
          j.lastError ? j.lastError.split('\n')[0]!.slice(0, 80) : null,
        ]),
      ),
    );
  }

  @Option({ flags: '--state <state>', description: `one of ${JOB_STATES.join(', ')}` })
  parseState(value: string): string {
    if (!(JOB_STATES as readonly string[]).includes(value)) throw new SnippetError(`--state must be one of ${JOB_STATES.join(', ')}`);
    return value;
  }

  @Option({ flags: '--kind <kind>', description: 'job kind' })
  parseKind(value: string): string {
    if (!/^[a-z][a-z0-9.-]{0,63}$/.test(value)) throw new SnippetError('--kind is a job kind like install.build');
    return value;
  }

  @Option({ flags: '--limit <n>', description: 'how many (default 50)' })
  parseLimit(value: string): number {
    if (!/^\d{1,3}$/.test(value) || Number(value) < 1 || Number(value) > 500) throw new SnippetError('--limit is 1 to 500');
    return Number(value);
  }
}

@Command({ name: 'jobs:show', arguments: '<id>', description: 'show one job, with its output' })
export class JobsShowCommand extends CommandRunner {
  constructor(private readonly jobs: JobsAdminService) {
    super();
  }

  async run([id]: string[]): Promise<void> {
    const job = await this.jobs.get(jobId(id));
    out(JSON.stringify(JobView.of(job), null, 2));
    for (const line of await this.jobs.output(job.id)) out(`[attempt ${line.attempt}] ${line.level === 'error' ? 'ERROR ' : ''}${line.line}`);
  }
}

@Command({ name: 'jobs:retry', arguments: '<id>', description: 'run a done, dead or cancelled job again (see also rerun-queue-item)' })
export class JobsRetryCommand extends CommandRunner {
  constructor(private readonly jobs: JobsAdminService) {
    super();
  }

  async run([id]: string[]): Promise<void> {
    const job = await this.jobs.retry(jobId(id), { actor: cliActor(), via: 'cli' });
    out(`job ${job.id} (${job.kind}) is ready to run again`);
  }
}

@Command({ name: 'jobs:cancel', arguments: '<id>', description: 'cancel a job that has not finished' })
export class JobsCancelCommand extends CommandRunner {
  constructor(private readonly jobs: JobsAdminService) {
    super();
  }

  async run([id]: string[]): Promise<void> {
    const job = await this.jobs.cancel(jobId(id), { actor: cliActor(), via: 'cli' });
    out(`job ${job.id} (${job.kind}) cancelled`);
  }
}

@Command({ name: 'jobs:remove', arguments: '<id>', description: 'remove a finished job and its output' })
export class JobsRemoveCommand extends CommandRunner {
  constructor(private readonly jobs: JobsAdminService) {
    super();
  }

  async run([id]: string[]): Promise<void> {
    await this.jobs.remove(jobId(id), { actor: cliActor(), via: 'cli' });
    out(`job ${id} removed`);
  }
}

@Command({ name: 'queue:stats', description: 'jobs per state and the age of the oldest due job' })
export class QueueStatsCommand extends CommandRunner {
  constructor(private readonly jobs: JobsAdminService) {
    super();
  }

  async run(): Promise<void> {
    const stats = await this.jobs.stats();
    out(table(['state', 'jobs'], Object.entries(stats.byState)));
    out(`oldest due job has waited ${stats.oldestReadyAgeSeconds} s`);
  }
}
