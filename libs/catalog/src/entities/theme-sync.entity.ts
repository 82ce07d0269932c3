import { Column, Entity, Index, JoinColumn, ManyToOne, type Relation } from 'typeorm';
import { CatalogEntity } from './base.entity.js';
import { Install } from './install.entity.js';
import { Server } from './server.entity.js';

/**
 * What the theme sync last copied of an install's copied paths to one of its
 * other servers: the digest of the master's tree it synced (paths, types,
 * sizes, modes, owners, mtimes, ctimes, link targets). A master tree whose
 * digest differs is synced there again; a server that was down or failed
 * keeps its old digest and is caught up on a later run.
 */
@Entity('theme_syncs')
@Index('uq_theme_syncs_install_server', ['installId', 'serverId'], { unique: true })
export class ThemeSyncState extends CatalogEntity {
  @ManyToOne(() => Install, { onDelete: 'CASCADE', nullable: false })
  @JoinColumn({ name: 'install_id', foreignKeyConstraintName: 'fk_theme_syncs_install' })
  install?: Relation<Install>;

  @Column({ type: 'int' })
  installId: number;

  @ManyToOne(() => Server, { onDelete: 'CASCADE', nullable: false })
  @JoinColumn({ name: 'server_id', foreignKeyConstraintName: 'fk_theme_syncs_server' })
  server?: Relation<Server>;

  @Index('ix_theme_syncs_server')
  @Column({ type: 'int' })
  serverId: number;

  /** The master tree's digest last synced to this server (null: never synced by the task). */
  @Column({ type: 'varchar', length: 64, nullable: true })
  digest: string | null;

  @Column({ type: 'datetime', nullable: true })
  syncedAt: Date | null;

  /** Why the last attempt failed (null once a sync succeeds). */
  @Column({ type: 'varchar', length: 1024, nullable: true })
  lastError: string | null;

  @Column({ type: 'datetime', nullable: true })
  failedAt: Date | null;
}
