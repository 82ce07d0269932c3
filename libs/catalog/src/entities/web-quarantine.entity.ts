import { Column, Entity, Index, JoinColumn, ManyToOne, type Relation } from 'typeorm';
import { CatalogEntity } from './base.entity.js';
import { Install } from './install.entity.js';
import { Server } from './server.entity.js';

/**
 * An install whose nginx file a dispatcher refused (nginx -t failed on it,
 * or it could not be rendered). Its sites keep their last good vhost there,
 * or none; every other install is applied without it. Cleared by the first
 * rebuild whose render of it passes.
 */
@Entity('web_quarantines')
@Index('uq_web_quarantines_server_install', ['serverId', 'installId'], { unique: true })
export class WebQuarantine extends CatalogEntity {
  @ManyToOne(() => Server, { onDelete: 'CASCADE', nullable: false })
  @JoinColumn({ name: 'server_id', foreignKeyConstraintName: 'fk_web_quarantines_server' })
  server?: Relation<Server>;

  @Column({ type: 'int' })
  serverId: number;

  @ManyToOne(() => Install, { onDelete: 'CASCADE', nullable: false })
  @JoinColumn({ name: 'install_id', foreignKeyConstraintName: 'fk_web_quarantines_install' })
  install?: Relation<Install>;

  @Index('ix_web_quarantines_install')
  @Column({ type: 'int' })
  installId: number;

  @Column({ type: 'varchar', length: 1024 })
  reason: string;
}
