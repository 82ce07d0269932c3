import { Column, Entity, Index, JoinColumn, ManyToOne, type Relation } from 'typeorm';
import { CatalogEntity } from './base.entity.js';
import { Job } from './job.entity.js';

/** One line of a job's output, in the order it was printed; tailed while the job runs. */
@Entity('job_logs')
@Index('ix_job_logs_job', ['jobId', 'id'])
export class JobLog extends CatalogEntity {
  @ManyToOne(() => Job, { onDelete: 'CASCADE', nullable: false })
  @JoinColumn({ name: 'job_id', foreignKeyConstraintName: 'fk_job_logs_job' })
  job?: Relation<Job>;

  @Column({ type: 'int' })
  jobId: number;

  /** The claim (attempt) that printed it. */
  @Column({ type: 'int' })
  attempt: number;

  @Column({ type: 'varchar', length: 8, default: 'info' })
  level: 'info' | 'error';

  @Column({ type: 'text' })
  line: string;
}
