import { Column, Entity, Index, JoinColumn, ManyToOne, type Relation } from 'typeorm';
import { CatalogEntity } from './base.entity.js';
import { Install } from './install.entity.js';
import { Server } from './server.entity.js';

/** An FTP bind mount of an install, applied idempotently by the mounts task. */
@Entity('startup_mounts')
@Index('uq_startup_mounts_server_target', ['serverId', 'target'], { unique: true })
export class StartupMount extends CatalogEntity {
  @ManyToOne(() => Install, { onDelete: 'CASCADE', nullable: false })
  @JoinColumn({ name: 'install_id', foreignKeyConstraintName: 'fk_startup_mounts_install' })
  install?: Relation<Install>;

  @Index('ix_startup_mounts_install')
  @Column({ type: 'int' })
  installId: number;

  @ManyToOne(() => Server, { onDelete: 'RESTRICT', nullable: false })
  @JoinColumn({ name: 'server_id', foreignKeyConstraintName: 'fk_startup_mounts_server' })
  server?: Relation<Server>;

  @Column({ type: 'int' })
  serverId: number;

  @Column({ type: 'varchar', length: 512 })
  source: string;

  @Column({ type: 'varchar', length: 512 })
  target: string;
}
