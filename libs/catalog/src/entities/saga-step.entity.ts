import { Column, Entity, Index, JoinColumn, ManyToOne, type Relation } from 'typeorm';
import { CatalogEntity } from './base.entity.js';
import { Job } from './job.entity.js';

export const SAGA_STEP_STATES = [
  'pending',
  'running',
  'done',
  'failed',
  'compensating',
  'compensated',
] as const;
export type SagaStepState = (typeof SAGA_STEP_STATES)[number];

/** The journal of a saga run: one row per step, committed before and after each effect. */
@Entity('saga_steps')
@Index('uq_saga_steps_job_step', ['jobId', 'stepIndex'], { unique: true })
export class SagaStep extends CatalogEntity {
  @ManyToOne(() => Job, { onDelete: 'CASCADE', nullable: false })
  @JoinColumn({ name: 'job_id', foreignKeyConstraintName: 'fk_saga_steps_job' })
  job?: Relation<Job>;

  @Column({ type: 'int' })
  jobId: number;

  @Column({ type: 'varchar', length: 64 })
  saga: string;

  @Column({ type: 'int' })
  stepIndex: number;

  @Column({ type: 'varchar', length: 64 })
  stepName: string;

  @Column({ type: 'varchar', length: 16, default: 'pending' })
  state: SagaStepState;

  @Column({ type: 'int', default: 0 })
  attempt: number;

  /** Milliseconds kept (a step of a build takes tens of them): a timeline of an order reads them. */
  @Column({ type: 'datetime', precision: 3, nullable: true })
  startedAt: Date | null;

  @Column({ type: 'datetime', precision: 3, nullable: true })
  finishedAt: Date | null;

  @Column({ type: 'int', nullable: true })
  durationMs: number | null;

  @Column({ type: 'text', nullable: true })
  error: string | null;

  @Column({ type: 'text', nullable: true })
  output: string | null;
}
