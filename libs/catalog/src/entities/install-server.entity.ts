import { Column, Entity, Index, JoinColumn, ManyToOne, type Relation } from 'typeorm';
import { CatalogEntity } from './base.entity.js';
import { Install } from './install.entity.js';
import { Server } from './server.entity.js';

export const INSTALL_SERVER_ROLES = ['master', 'replica', 'cloud'] as const;
export type InstallServerRole = (typeof INSTALL_SERVER_ROLES)[number];
/**
 * adding: the add-handler saga is putting the install on the server (no
 * traffic yet); active: serving; removing: taken out of every upstream,
 * its pool and files on the way out.
 */
export const INSTALL_SERVER_STATES = ['adding', 'active', 'removing'] as const;
export type InstallServerState = (typeof INSTALL_SERVER_STATES)[number];

/** A server hosting a copy of an install, with its share of the PHP traffic. */
@Entity('install_servers')
@Index('uq_install_servers_install_server', ['installId', 'serverId'], { unique: true })
@Index('uq_install_servers_server_pool_port', ['serverId', 'poolPort'], { unique: true })
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

  /**
   * The TCP port of the install's php-fpm pool on this server (bound to its
   * private IP), unique per server; null where the pool listens on a unix
   * socket (the server is a dispatcher of the install) or the server's PHP
   * is not managed by the engine (no php-fpm pool dir).
   */
  @Column({ type: 'int', nullable: true })
  poolPort: number | null;

  @Column({ type: 'varchar', length: 16, default: 'active' })
  state: InstallServerState;
}
