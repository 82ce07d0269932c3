import { Column, Entity, Index, JoinColumn, ManyToOne, type Relation } from 'typeorm';
import { CatalogEntity } from './base.entity.js';
import { Job } from './job.entity.js';
import { SharedCodeGroup } from './shared-code-group.entity.js';

/** rollout: a code group rolled to a revision; rollback: back to the one before; sql-snippet: one SQL snippet run on chosen installs. */
export const CODE_UPDATE_KINDS = ['rollout', 'rollback', 'sql-snippet'] as const;
export type CodeUpdateKind = (typeof CODE_UPDATE_KINDS)[number];
/** planned (a dry run, or not started), running, done (every item ended well), failed (some item failed), stopped (the canary failed: the rest untouched). */
export const CODE_UPDATE_STATES = ['planned', 'running', 'done', 'failed', 'stopped'] as const;
export type CodeUpdateState = (typeof CODE_UPDATE_STATES)[number];

/**
 * One operation on the code of many installs (the design card's
 * codebase-update module): its parent job, and an item per install
 * (CodeUpdateItem) that is the report nobody has to grep.
 */
@Entity('code_updates')
@Index('ix_code_updates_group', ['groupId', 'id'])
export class CodeUpdate extends CatalogEntity {
  @Column({ type: 'varchar', length: 16 })
  kind: CodeUpdateKind;

  @ManyToOne(() => SharedCodeGroup, { onDelete: 'CASCADE', nullable: true })
  @JoinColumn({ name: 'group_id', foreignKeyConstraintName: 'fk_code_updates_group' })
  group?: Relation<SharedCodeGroup>;

  /** The group rolled (null for an SQL snippet run on installs of several groups). */
  @Column({ type: 'int', nullable: true })
  groupId: number | null;

  @Column({ type: 'varchar', length: 64, nullable: true })
  fromRevision: string | null;

  @Column({ type: 'varchar', length: 64, nullable: true })
  toRevision: string | null;

  /** SQL snippets: the name it is recorded under in database_updates (`snippet:<name>`), its SHA-256 and its text. */
  @Column({ type: 'varchar', length: 128, nullable: true })
  snippetName: string | null;

  @Column({ type: 'varchar', length: 64, nullable: true })
  snippetChecksum: string | null;

  @Column({ type: 'text', nullable: true })
  snippetSql: string | null;

  /** Run a snippet again on installs that already have it. */
  @Column({ type: 'boolean', default: false })
  force: boolean;

  @Column({ type: 'varchar', length: 16, default: 'planned' })
  state: CodeUpdateState;

  /** The install updated first; the others follow only once it is healthy. */
  @Column({ type: 'int', nullable: true })
  canaryInstallId: number | null;

  /** How many installs are updated at once after the canary. */
  @Column({ type: 'int', default: 4 })
  concurrency: number;

  @ManyToOne(() => Job, { onDelete: 'SET NULL', nullable: true })
  @JoinColumn({ name: 'job_id', foreignKeyConstraintName: 'fk_code_updates_job' })
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

  /** Why it stopped or failed, in a sentence (the items carry the details). */
  @Column({ type: 'varchar', length: 1024, nullable: true })
  error: string | null;
}
