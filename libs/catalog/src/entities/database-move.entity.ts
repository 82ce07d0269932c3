import { Column, Entity, Index, JoinColumn, ManyToOne, type Relation } from 'typeorm';
import { CatalogEntity } from './base.entity.js';
import { Job } from './job.entity.js';
import { Server } from './server.entity.js';

/** running; done (every install moved); failed (some install failed: named in the error, details per item). */
export const DATABASE_MOVE_STATES = ['running', 'done', 'failed'] as const;
export type DatabaseMoveState = (typeof DATABASE_MOVE_STATES)[number];

/**
 * The seed's wished-for `move_database`: every install whose tenant database
 * is on one server pointed at another (a replica), its parent job, and an
 * item per install (DatabaseMoveItem) that is the report.
 */
@Entity('database_moves')
export class DatabaseMove extends CatalogEntity {
  @ManyToOne(() => Server, { onDelete: 'CASCADE', nullable: false })
  @JoinColumn({ name: 'from_server_id', foreignKeyConstraintName: 'fk_database_moves_from' })
  fromServer?: Relation<Server>;

  @Column({ type: 'int' })
  fromServerId: number;

  @ManyToOne(() => Server, { onDelete: 'CASCADE', nullable: false })
  @JoinColumn({ name: 'to_server_id', foreignKeyConstraintName: 'fk_database_moves_to' })
  toServer?: Relation<Server>;

  @Column({ type: 'int' })
  toServerId: number;

  @Index('ix_database_moves_state')
  @Column({ type: 'varchar', length: 16, default: 'running' })
  state: DatabaseMoveState;

  /** How many installs are moved at once. */
  @Column({ type: 'int', default: 8 })
  concurrency: number;

  @ManyToOne(() => Job, { onDelete: 'SET NULL', nullable: true })
  @JoinColumn({ name: 'job_id', foreignKeyConstraintName: 'fk_database_moves_job' })
  job?: Relation<Job>;

  /** The parent job. */
  @Column({ type: 'int', nullable: true })
  jobId: number | null;

  /** Who asked (the audit actor). */
  @Column({ type: 'varchar', length: 128 })
  requestedBy: string;

  @Column({ type: 'datetime', nullable: true })
  startedAt: Date | null;

  @Column({ type: 'datetime', nullable: true })
  finishedAt: Date | null;

  /** Why it failed, in a sentence (the items carry the details). */
  @Column({ type: 'varchar', length: 1024, nullable: true })
  error: string | null;
}
