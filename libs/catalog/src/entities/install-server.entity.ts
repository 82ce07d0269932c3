import { Column, Entity, Index, JoinColumn, ManyToOne, type Relation } from 'typeorm';
import { CatalogEntity } from './base.entity.js';
import { Install } from './install.entity.js';
import { Server } from './server.entity.js';

export const INSTALL_SERVER_ROLES = ['master', 'replica', 'cloud'] as const;
export type InstallServerRole = (typeof INSTALL_SERVER_ROLES)[number];

/** A server hosting a copy of an install, with its share of the PHP traffic. */
@Entity('install_servers')
@Index('uq_install_servers_install_server', ['installId', 'serverId'], { unique: true })
export class InstallServer extends CatalogEntity {
  @ManyToOne(() => Install, { onDelete: 'CASCADE', nullable: false })
  @JoinColumn({ name: 'install_id', foreignKeyConstraintName: 'fk_install_servers_install' })
  install?: Relation<Install>;

  @Column({ type: 'int' })
  installId: number;

  @ManyToOne(() => Server, { onDelete: 'RESTRICT', nullable: false })
  @JoinColumn({ name: 'server_id', foreignKeyConstraintName: 'fk_install_servers_server' })
  server?: Relation<Server>;

  @Index('ix_install_servers_server')
  @Column({ type: 'int' })
  serverId: number;

  /** master (the build runs there), replica (second dispatcher of a paid install) or cloud. */
  @Column({ type: 'varchar', length: 16 })
  role: InstallServerRole;

  /** Upstream weight for this server's php-fpm; 0 takes it out of rotation. */
  @Column({ type: 'int', default: 1 })
  weight: number;
}
