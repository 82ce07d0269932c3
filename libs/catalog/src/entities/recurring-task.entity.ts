import { Column, Entity, Index } from 'typeorm';
import { CatalogEntity } from './base.entity.js';

export const TASK_RESULTS = ['ok', 'failed'] as const;
export type TaskResult = (typeof TASK_RESULTS)[number];

/**
 * A recurring task's schedule state, shared by every engine: the last tick
 * a scheduler queued (a tick is queued once, whatever the number of
 * engines with the cron role) and what its runs did. A task with no
 * successful run within twice its interval is stale.
 */
@Entity('recurring_tasks')
export class RecurringTaskRecord extends CatalogEntity {
  @Index('uq_recurring_tasks_name', { unique: true })
  @Column({ type: 'varchar', length: 64 })
  name: string;

  /** The schedule as declared (`every 10 s` or a cron expression), for engines that do not run the task. */
  @Column({ type: 'varchar', length: 128 })
  schedule: string;

  /** The interval the staleness rule uses (milliseconds between two ticks). */
  @Column({ type: 'int' })
  intervalMs: number;

  /** The last tick queued (its job holds the same tick in its idempotency key). */
  @Column({ type: 'datetime', nullable: true })
  lastTick: Date | null;

  @Column({ type: 'int', nullable: true })
  lastJobId: number | null;

  @Column({ type: 'datetime', nullable: true })
  lastStartedAt: Date | null;

  @Column({ type: 'datetime', nullable: true })
  lastFinishedAt: Date | null;

  @Column({ type: 'datetime', nullable: true })
  lastSuccessAt: Date | null;

  @Column({ type: 'varchar', length: 8, nullable: true })
  lastResult: TaskResult | null;

  @Column({ type: 'varchar', length: 1024, nullable: true })
  lastError: string | null;

  @Column({ type: 'int', nullable: true })
  lastDurationMs: number | null;

  @Column({ type: 'int', default: 0 })
  runs: number;

  /** Ticks not queued because the previous run had not finished. */
  @Column({ type: 'int', default: 0 })
  skipped: number;
}
