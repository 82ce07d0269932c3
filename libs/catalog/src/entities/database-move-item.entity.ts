import { Column, Entity, Index, JoinColumn, ManyToOne, type Relation } from 'typeorm';
import { CatalogEntity } from './base.entity.js';
import { DatabaseMove } from './database-move.entity.js';
import { Install } from './install.entity.js';

/** pending; running; done (configs on every server point at the new server, the catalog too, caches emptied); failed (undone: still on the old one); skipped (no longer on the old server, or not live). */
export const DATABASE_MOVE_ITEM_STATES = ['pending', 'running', 'done', 'failed', 'skipped'] as const;
export type DatabaseMoveItemState = (typeof DATABASE_MOVE_ITEM_STATES)[number];

/** One install's line in a database move's report. */
@Entity('database_move_items')
@Index('uq_database_move_items_move_install', ['moveId', 'installId'], { unique: true })
export class DatabaseMoveItem extends CatalogEntity {
  @ManyToOne(() => DatabaseMove, { onDelete: 'CASCADE', nullable: false })
  @JoinColumn({ name: 'move_id', foreignKeyConstraintName: 'fk_database_move_items_move' })
  move?: Relation<DatabaseMove>;

  @Column({ type: 'int' })
  moveId: number;

  @ManyToOne(() => Install, { onDelete: 'CASCADE', nullable: false })
  @JoinColumn({ name: 'install_id', foreignKeyConstraintName: 'fk_database_move_items_install' })
  install?: Relation<Install>;

  @Index('ix_database_move_items_install')
  @Column({ type: 'int' })
  installId: number;

  @Column({ type: 'varchar', length: 16, default: 'pending' })
  state: DatabaseMoveItemState;

  /** Its child job (the install's saga). */
  @Column({ type: 'int', nullable: true })
  jobId: number | null;

  /** Config files written (every template on every server that has a copy). */
  @Column({ type: 'int', default: 0 })
  filesRendered: number;

  @Column({ type: 'boolean', default: false })
  cachesCleared: boolean;

  /** What failed (redacted). */
  @Column({ type: 'varchar', length: 2048, nullable: true })
  error: string | null;

  @Column({ type: 'datetime', nullable: true })
  startedAt: Date | null;

  @Column({ type: 'datetime', nullable: true })
  finishedAt: Date | null;
}
