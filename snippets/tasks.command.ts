import { Command, CommandRunner, Option } from 'nest-commander';
import { AuditEventRepository } from '@app/catalog';
import { JobsAdminService, QueueService } from '@app/queue';
import { TASK_RUN, taskResourceKey, TaskStatus } from '@app/tasks';
import { out, SnippetError, table } from './cli-output.js';
import { followJob } from './follow-job.js';
import { cliActor } from './token-create.command.js';

const when = (d: Date | null) => (d ? d.toISOString().replace('.000Z', 'Z') : '-');

@Command({ name: 'tasks:list', description: 'the recurring tasks: schedule, last run, next run, state (stale: no success within twice the interval)' })
export class TasksListCommand extends CommandRunner {
  constructor(private readonly status: TaskStatus) {
    super();
  }

  async run(_args: string[], options: { json?: boolean }): Promise<void> {
    const tasks = await this.status.list();
    if (options.json) {
      out(JSON.stringify(tasks, null, 2));
      return;
    }
    if (tasks.length === 0) {
      out('no recurring task has been scheduled yet: is an engine with the cron role running on this catalog?');
      return;
    }
    out(
      table(
        ['task', 'schedule', 'last run', 'took', 'result', 'next run', 'runs', 'skipped', 'state'],
        tasks.map((t) => [
          t.name,
          t.schedule,
          when(t.lastStartedAt),
          t.lastDurationMs === null ? '-' : `${(t.lastDurationMs / 1000).toFixed(1)} s`,
          t.lastResult ? (t.lastResult === 'failed' ? `failed: ${(t.lastError ?? '').slice(0, 60)}` : 'ok') : '-',
          when(t.nextTick ?? (t.lastTick ? new Date(t.lastTick.getTime() + t.intervalMs) : null)),
          t.runs,
          t.skipped,
          t.stale ? 'STALE' : t.running ? 'running' : 'ok',
        ]),
      ),
    );
  }

  @Option({ flags: '--json', description: 'print JSON' })
  parseJson(): boolean {
    return true;
  }
}

@Command({ name: 'tasks:run', arguments: '<name>', description: 'run a recurring task now (after a run in progress, never beside it) and stream its output; exit 1 if it fails' })
export class TasksRunCommand extends CommandRunner {
  constructor(
    private readonly status: TaskStatus,
    private readonly queue: QueueService,
    private readonly jobs: JobsAdminService,
    private readonly audit: AuditEventRepository,
  ) {
    super();
  }

  async run([name]: string[], options: { timeout?: number; wait?: boolean }): Promise<void> {
    const known = (await this.status.list()).map((t) => t.name);
    if (!name || !known.includes(name)) {
      throw new SnippetError(`no recurring task ${JSON.stringify(name ?? '')}; tasks: ${known.join(', ') || 'none scheduled yet (no engine with the cron role has run)'}`);
    }
    const now = new Date();
    const { job } = await this.queue.enqueue(
      TASK_RUN,
      { task: name, tick: now.toISOString(), manual: true },
      { idempotencyKey: `task:${name}:manual:${now.toISOString()}`, resourceKey: taskResourceKey(name) },
    );
    await this.audit.record({ actor: cliActor(), via: 'cli', action: 'task.run', targetType: 'task', targetId: name, details: { jobId: job.id } });
    out(`task ${name}: run queued as job ${job.id}${options.wait === false ? '' : '; output follows'}`);
    if (options.wait === false) return;
    await followJob(this.jobs, job.id, { timeoutS: options.timeout });
  }

  @Option({ flags: '--timeout <seconds>', description: 'stop following after this long (the run goes on)' })
  parseTimeout(value: string): number {
    if (!/^\d{1,6}$/.test(value)) throw new SnippetError('--timeout is a number of seconds');
    return Number(value);
  }

  @Option({ flags: '--no-wait', description: 'queue the run and return' })
  parseNoWait(): boolean {
    return false;
  }
}
