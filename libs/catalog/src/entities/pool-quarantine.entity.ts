import { Column, Entity, Index, JoinColumn, ManyToOne, type Relation } from 'typeorm';
import { CatalogEntity } from './base.entity.js';
import { Install } from './install.entity.js';
import { Server } from './server.entity.js';

/**
 * An install whose php-fpm pool a handler refused (php-fpm -t failed on it,
 * or it could not be rendered). It keeps its last good pool there,
 * or none; every other install is applied without it. Cleared by the first
 * rebuild whose render of it passes.
 */
@Entity('pool_quarantines')
@Index('uq_pool_quarantines_server_install', ['serverId', 'installId'], { unique: true })
export class PoolQuarantine extends CatalogEntity {
  @ManyToOne(() => Server, { onDelete: 'CASCADE', nullable: false })
  @JoinColumn({ name: 'server_id', foreignKeyConstraintName: 'fk_pool_quarantines_server' })
  server?: Relation<Server>;

  @Column({ type: 'int' })
  serverId: number;

  @ManyToOne(() => Install, { onDelete: 'CASCADE', nullable: false })
  @JoinColumn({ name: 'install_id', foreignKeyConstraintName: 'fk_pool_quarantines_install' })
  install?: Relation<Install>;

  @Index('ix_pool_quarantines_install')
  @Column({ type: 'int' })
  installId: number;

  @Column({ type: 'varchar', length: 1024 })
  reason: string;
}
