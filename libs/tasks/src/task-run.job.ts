import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { RecurringTaskRecord } from '@app/catalog';
import { redactSecrets } from '@app/common';
import { defineJobKind, JobHandler, PermanentJobError, type JobContext } from '@app/queue';
import { TaskRegistry } from './task-registry.js';

export interface TaskRunPayload {
  task: string;
  /** The tick (ISO time) this run is for; a manual run carries the time it was asked for. */
  tick: string;
  manual?: boolean;
}

/**
 * One run of a recurring task. Two attempts: a run whose worker died is
 * taken back after its lease and run again (once); a run that fails is
 * recorded and not retried (the next tick is the retry).
 */
export const TASK_RUN = defineJobKind<TaskRunPayload>('task.run', { maxAttempts: 2 });

/** The queue key that keeps two runs of one task from overlapping, on any number of engines. */
export const taskResourceKey = (name: string) => `task:${name}`;

@Injectable()
export class TaskRunJob {
  constructor(
    private readonly registry: TaskRegistry,
    @InjectDataSource() private readonly dataSource: DataSource,
  ) {}

  @JobHandler(TASK_RUN)
  async run(payload: TaskRunPayload, job: JobContext): Promise<void> {
    const registered = this.registry.get(payload.task);
    if (!registered) throw new PermanentJobError(`no recurring task named ${JSON.stringify(payload.task)} in this engine's build`);
    const rows = this.dataSource.getRepository(RecurringTaskRecord);
    const started = Date.now();
    await rows.update({ name: payload.task }, { lastStartedAt: new Date(started) });
    if (job.attempt > 1) job.log(`run ${job.attempt}: the previous holder of this run stopped (its lease ran out)`);
    try {
      await registered.task.run({ jobId: job.jobId, tick: new Date(payload.tick), signal: job.signal, log: (line) => job.log(line) });
    } catch (error) {
      const message = redactSecrets(error instanceof Error ? error.message : String(error)).slice(0, 1000);
      await rows.update({ name: payload.task }, { lastFinishedAt: new Date(), lastResult: 'failed', lastError: message, lastDurationMs: Date.now() - started, runs: () => 'runs + 1' });
      // The next tick is the retry; the job ends here (dead), with the error.
      throw new PermanentJobError(`${registered.task.options.failure}: ${message}`);
    }
    const now = new Date();
    await rows.update({ name: payload.task }, { lastFinishedAt: now, lastSuccessAt: now, lastResult: 'ok', lastError: null, lastDurationMs: now.getTime() - started, runs: () => 'runs + 1' });
  }
}
