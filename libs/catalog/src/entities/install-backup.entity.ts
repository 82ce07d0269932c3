import { Column, Entity, Index, JoinColumn, ManyToOne, type Relation } from 'typeorm';
import { CatalogEntity } from './base.entity.js';
import { Install } from './install.entity.js';
import { Server } from './server.entity.js';

export const INSTALL_BACKUP_STATES = ['taking', 'kept', 'restored', 'purged', 'failed'] as const;
export type InstallBackupState = (typeof INSTALL_BACKUP_STATES)[number];

/**
 * A backup taken before an install is removed (its home's own files, its
 * database dump, its certificates, its catalog rows), kept on a server for
 * a grace period so `install:restore` can bring the shop back; purged by a
 * recurring task once expired.
 */
@Entity('install_backups')
@Index('ix_install_backups_state_expires', ['state', 'expiresAt'])
export class InstallBackup extends CatalogEntity {
  @ManyToOne(() => Install, { onDelete: 'CASCADE', nullable: false })
  @JoinColumn({ name: 'install_id', foreignKeyConstraintName: 'fk_install_backups_install' })
  install?: Relation<Install>;

  @Index('ix_install_backups_install')
  @Column({ type: 'int' })
  installId: number;

  /** The server holding the backup's directory. */
  @ManyToOne(() => Server, { onDelete: 'RESTRICT', nullable: false })
  @JoinColumn({ name: 'server_id', foreignKeyConstraintName: 'fk_install_backups_server' })
  server?: Relation<Server>;

  @Column({ type: 'int' })
  serverId: number;

  /** Absolute directory on that server, made by the engine for this backup alone. */
  @Column({ type: 'varchar', length: 512 })
  path: string;

  @Column({ type: 'varchar', length: 16, default: 'taking' })
  state: InstallBackupState;

  /** When the purge task may delete it. */
  @Column({ type: 'datetime' })
  expiresAt: Date;

  @Column({ type: 'bigint', nullable: true })
  sizeBytes: string | null;

  /** What the backup holds (file names, sizes, sha256, the catalog rows needed to restore). */
  @Column({ type: 'simple-json', nullable: true })
  contents: Record<string, unknown> | null;

  @Column({ type: 'varchar', length: 1024, nullable: true })
  error: string | null;
}
