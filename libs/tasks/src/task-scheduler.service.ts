import { Inject, Injectable, Logger, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, type EntityManager } from 'typeorm';
import { RecurringTaskRecord } from '@app/catalog';
import { ENGINE_CONFIG, hasRole, type EngineConfig } from '@app/config';
import { QueueService, sqlDialect } from '@app/queue';
import { TaskRegistry, type RegisteredTask } from './task-registry.js';
import { TASK_RUN, taskResourceKey } from './task-run.job.js';

/** How often a scheduler looks for due ticks: a tick is queued within this of its time. */
export const SCHEDULER_PASS_MS = 1_000;
/** Finished runs' jobs are deleted after this (done) or a week (dead): a 10 s task would leave 8,640 a day. */
const KEEP_DONE_RUNS_MS = 60 * 60_000;
const KEEP_FAILED_RUNS_MS = 7 * 24 * 60 * 60_000;
const CLEANUP_EVERY_MS = 60_000;

export type TickOutcome = 'queued' | 'skipped' | 'taken';

/**
 * The `cron` role: every second, each due tick of each task is queued as a
 * `task.run` job. The tick is claimed in the catalog by one conditional
 * update of its row (`last_tick` moves forward only), in the transaction
 * that queues the job: however many engines schedule, each tick is queued
 * once, and after downtime only the latest missed tick is. A tick that
 * comes while the previous run is unfinished is skipped (counted), and the
 * job's resource key keeps a task's runs from overlapping anyway.
 */
@Injectable()
export class TaskScheduler implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('TaskScheduler');
  private timer: NodeJS.Timeout | null = null;
  private pass: Promise<void> | null = null;
  /** Per task, the latest tick known queued (by anyone): saves a catalog round trip per task per pass. */
  private readonly known = new Map<string, number>();
  private lastCleanup = 0;
  private stopped = false;

  constructor(
    private readonly registry: TaskRegistry,
    private readonly queue: QueueService,
    @InjectDataSource() private readonly dataSource: DataSource,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
  ) {}

  onApplicationBootstrap(): void {
    if (!hasRole(this.config, 'cron')) return;
    const loop = () => {
      if (this.pass || this.stopped) return;
      this.pass = this.runPass()
        .then(() => undefined)
        .catch((error: unknown) => this.logger.error({ err: error }, 'scheduling recurring tasks failed; trying again'))
        .finally(() => (this.pass = null));
    };
    // The first pass a second after boot, not during it (the embedded default seeds and prints its token then).
    this.timer = setInterval(loop, SCHEDULER_PASS_MS);
    this.timer.unref();
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.pass;
  }

  /** One look at every task (exported for tests: a pass at a given time). */
  async runPass(now = new Date()): Promise<Map<string, TickOutcome | 'not-due'>> {
    const outcomes = new Map<string, TickOutcome | 'not-due'>();
    for (const registered of this.registry.all()) {
      if (this.stopped) break;
      if (registered.task.options.enabled === false) continue;
      const tick = registered.schedule.latestTick(now);
      if ((this.known.get(registered.task.name) ?? -Infinity) >= tick.getTime()) {
        outcomes.set(registered.task.name, 'not-due');
        continue;
      }
      outcomes.set(registered.task.name, await this.queueTick(registered, tick));
    }
    if (now.getTime() - this.lastCleanup >= CLEANUP_EVERY_MS) {
      this.lastCleanup = now.getTime();
      await this.cleanup(now);
    }
    return outcomes;
  }

  private async queueTick({ task, schedule }: RegisteredTask, tick: Date): Promise<TickOutcome> {
    await this.ensureRow(task.name, schedule.describe(), schedule.intervalMs(tick));
    const at = this.dbTime(tick);
    // SQLite (the embedded default, one connection shared by the whole engine) runs the same statements
    // without a transaction: a transaction there would interleave with the engine's others. One process
    // schedules there, so the claim's conditional update alone keeps a tick to one job.
    const sqlite = sqlDialect(this.dataSource).kind === 'sqlite';
    const inTransaction = <T>(work: (manager: EntityManager) => Promise<T>) => (sqlite ? work(this.dataSource.manager) : this.dataSource.transaction(work));
    const outcome = await inTransaction(async (manager): Promise<TickOutcome> => {
      const claimed = await manager
        .createQueryBuilder()
        .update(RecurringTaskRecord)
        .set({ lastTick: () => ':tick' })
        .where('name = :name AND (last_tick IS NULL OR last_tick < :tick)', { name: task.name, tick: at })
        .execute();
      if ((claimed.affected ?? 0) === 0) return 'taken';
      const [row] = (await manager.query('SELECT last_job_id FROM recurring_tasks WHERE name = ?', [task.name])) as { last_job_id: number | null }[];
      if (row?.last_job_id != null) {
        const [previous] = (await manager.query('SELECT state FROM jobs WHERE id = ?', [row.last_job_id])) as { state: string }[];
        if (previous && ['ready', 'blocked', 'running'].includes(previous.state)) {
          await manager.query('UPDATE recurring_tasks SET skipped = skipped + 1 WHERE name = ?', [task.name]);
          return 'skipped';
        }
      }
      const { job } = await this.queue.enqueue(
        TASK_RUN,
        { task: task.name, tick: tick.toISOString() },
        { idempotencyKey: `task:${task.name}:${tick.toISOString()}`, resourceKey: taskResourceKey(task.name), manager },
      );
      await manager.query('UPDATE recurring_tasks SET last_job_id = ? WHERE name = ?', [job.id, task.name]);
      return 'queued';
    });
    this.known.set(task.name, tick.getTime());
    if (outcome === 'queued') this.queue.nudge();
    if (outcome === 'skipped') this.logger.warn(`${task.name}: the tick of ${tick.toISOString()} skipped, the previous run has not finished`);
    return outcome;
  }

  /** The task's row, made on first sight (engines racing to make it: one wins, the others find it). */
  private async ensureRow(name: string, schedule: string, intervalMs: number): Promise<void> {
    const rows = this.dataSource.getRepository(RecurringTaskRecord);
    const existing = await rows.findOne({ where: { name } });
    if (existing) {
      if (existing.schedule !== schedule || existing.intervalMs !== intervalMs) await rows.update({ name }, { schedule, intervalMs });
      return;
    }
    try {
      await rows.insert({ name, schedule, intervalMs });
    } catch (error) {
      if (!(await rows.exists({ where: { name } }))) throw error;
    }
  }

  /** Old runs' jobs (their output with them) go; the last one of each task stays, whatever its age. */
  private async cleanup(now: Date): Promise<void> {
    for (const [state, keepMs] of [['done', KEEP_DONE_RUNS_MS], ['dead', KEEP_FAILED_RUNS_MS]] as const) {
      await this.dataSource.query(
        `DELETE FROM jobs WHERE id IN (SELECT id FROM (
           SELECT id FROM jobs WHERE kind = ? AND state = ? AND finished_at < ?
             AND id NOT IN (SELECT last_job_id FROM recurring_tasks WHERE last_job_id IS NOT NULL)
           ORDER BY id LIMIT 1000) AS old_runs)`,
        [TASK_RUN.name, state, this.dbTime(new Date(now.getTime() - keepMs))],
      );
    }
  }

  /** A time as the catalog's datetime columns compare it (SQLite keeps UTC text). */
  private dbTime(date: Date): Date | string {
    return sqlDialect(this.dataSource).kind === 'sqlite' ? date.toISOString().replace('T', ' ').replace('Z', '') : date;
  }
}
