import { Column, Entity, Index, JoinColumn, ManyToOne, type Relation } from 'typeorm';
import { CatalogEntity } from './base.entity.js';
import { CodeUpdate } from './code-update.entity.js';
import { Install } from './install.entity.js';

/**
 * pending; running; done (switched or run, SQL applied, caches cleared,
 * probed); failed (the error with file and statement; the install stays on
 * or is back on its old release); skipped (nothing to do: a snippet it
 * already has, without force); rolled-back (switched back by a rollback).
 */
export const CODE_UPDATE_ITEM_STATES = ['pending', 'running', 'done', 'failed', 'skipped', 'rolled-back'] as const;
export type CodeUpdateItemState = (typeof CODE_UPDATE_ITEM_STATES)[number];

/** One install's line in a code update's report. */
@Entity('code_update_items')
@Index('uq_code_update_items_update_install', ['updateId', 'installId'], { unique: true })
export class CodeUpdateItem extends CatalogEntity {
  @ManyToOne(() => CodeUpdate, { onDelete: 'CASCADE', nullable: false })
  @JoinColumn({ name: 'update_id', foreignKeyConstraintName: 'fk_code_update_items_update' })
  update?: Relation<CodeUpdate>;

  @Column({ type: 'int' })
  updateId: number;

  @ManyToOne(() => Install, { onDelete: 'CASCADE', nullable: false })
  @JoinColumn({ name: 'install_id', foreignKeyConstraintName: 'fk_code_update_items_install' })
  install?: Relation<Install>;

  @Index('ix_code_update_items_install')
  @Column({ type: 'int' })
  installId: number;

  @Column({ type: 'varchar', length: 16, default: 'pending' })
  state: CodeUpdateItemState;

  /** Whether this install is the rollout's canary. */
  @Column({ type: 'boolean', default: false })
  canary: boolean;

  /** Its child job. */
  @Column({ type: 'int', nullable: true })
  jobId: number | null;

  /** Whether its links point at the new release now. */
  @Column({ type: 'boolean', default: false })
  switched: boolean;

  /** SQL files (or the snippet) applied, and the time they took. */
  @Column({ type: 'int', default: 0 })
  sqlApplied: number;

  @Column({ type: 'int', nullable: true })
  sqlMs: number | null;

  @Column({ type: 'boolean', default: false })
  cachesCleared: boolean;

  /** The probe's verdict through each dispatcher (`ok`, or what answered). */
  @Column({ type: 'varchar', length: 255, nullable: true })
  probe: string | null;

  /** What failed: the message (redacted), and for SQL the file, line and statement. */
  @Column({ type: 'varchar', length: 2048, nullable: true })
  error: string | null;

  @Column({ type: 'varchar', length: 255, nullable: true })
  errorFile: string | null;

  @Column({ type: 'int', nullable: true })
  errorLine: number | null;

  @Column({ type: 'text', nullable: true })
  errorStatement: string | null;

  @Column({ type: 'datetime', nullable: true })
  startedAt: Date | null;

  @Column({ type: 'datetime', nullable: true })
  finishedAt: Date | null;
}
