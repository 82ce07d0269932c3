import { Column, Entity, Index, JoinColumn, ManyToOne, type Relation } from 'typeorm';
import { CatalogEntity } from './base.entity.js';

export const JOB_STATES = ['ready', 'blocked', 'running', 'done', 'dead', 'cancelled'] as const;
export type JobState = (typeof JOB_STATES)[number];

/** A queue item (the seed's queue table), shared by every engine instance. */
@Entity('jobs')
@Index('ix_jobs_claim', ['state', 'priority', 'runAfter', 'id'])
@Index('ix_jobs_resource', ['resourceKey', 'state'])
@Index('ix_jobs_lease', ['state', 'leaseExpiresAt'])
export class Job extends CatalogEntity {
  @Column({ type: 'varchar', length: 64 })
  kind: string;

  @Column({ type: 'simple-json' })
  payload: Record<string, unknown>;

  @Column({ type: 'varchar', length: 16, default: 'ready' })
  state: JobState;

  @Column({ type: 'int', default: 0 })
  priority: number;

  @Column({ type: 'datetime', precision: 3 })
  runAfter: Date;

  /** Counted at claim, so a job that kills its worker every time ends dead, not in a loop. */
  @Column({ type: 'int', default: 0 })
  attempts: number;

  @Column({ type: 'int', default: 5 })
  maxAttempts: number;

  @Column({ type: 'varchar', length: 128, nullable: true })
  leaseOwner: string | null;

  @Column({ type: 'datetime', precision: 3, nullable: true })
  leaseExpiresAt: Date | null;

  /** Bumped at every claim; finishing and renewing require the fence the worker claimed with. */
  @Column({ type: 'int', default: 0 })
  fence: number;

  @Index('uq_jobs_idempotency_key', { unique: true })
  @Column({ type: 'varchar', length: 191, nullable: true })
  idempotencyKey: string | null;

  /** Mutual exclusion: at most one running job per key (`install:42`, `nginx:server:3`). */
  @Column({ type: 'varchar', length: 191, nullable: true })
  resourceKey: string | null;

  /**
   * Equals `resourceKey` while the job runs, NULL otherwise. Its unique index
   * is the mutual exclusion: two workers can never both run a key, whatever
   * their claims race.
   */
  @Index('uq_jobs_running_key', { unique: true })
  @Column({ type: 'varchar', length: 191, nullable: true })
  runningKey: string | null;

  @ManyToOne(() => Job, { onDelete: 'SET NULL', nullable: true })
  @JoinColumn({ name: 'parent_id', foreignKeyConstraintName: 'fk_jobs_parent' })
  parent?: Relation<Job>;

  @Column({ type: 'int', nullable: true })
  parentId: number | null;

  @Column({ type: 'text', nullable: true })
  lastError: string | null;

  @Column({ type: 'datetime', precision: 3, nullable: true })
  startedAt: Date | null;

  @Column({ type: 'datetime', precision: 3, nullable: true })
  finishedAt: Date | null;
}
