import { Column, Entity, Index, JoinColumn, ManyToOne, type Relation } from 'typeorm';
import { CatalogEntity } from './base.entity.js';
import { Install } from './install.entity.js';
import { Server } from './server.entity.js';

/** Hits and bytes one hostname of an install served on one UTC day, summed over its dispatchers (site accounting). */
@Entity('site_usage')
@Index('uq_site_usage_install_host_day', ['installId', 'hostname', 'day'], { unique: true })
export class SiteUsage extends CatalogEntity {
  @ManyToOne(() => Install, { onDelete: 'CASCADE', nullable: false })
  @JoinColumn({ name: 'install_id', foreignKeyConstraintName: 'fk_site_usage_install' })
  install?: Relation<Install>;

  @Column({ type: 'int' })
  installId: number;

  /** The name the requests carried (a site's hostname or secure hostname at the time). */
  @Column({ type: 'varchar', length: 253 })
  hostname: string;

  /** YYYY-MM-DD, UTC. */
  @Column({ type: 'varchar', length: 10 })
  day: string;

  @Column({ type: 'bigint', default: 0 })
  hits: string;

  @Column({ type: 'bigint', default: 0 })
  bytes: string;
}

/** How far site accounting has read a dispatcher's access log: the file (inode) and the byte after the last whole line counted. */
@Entity('access_log_cursors')
@Index('uq_access_log_cursors_server_path', ['serverId', 'path'], { unique: true })
export class AccessLogCursor extends CatalogEntity {
  @ManyToOne(() => Server, { onDelete: 'CASCADE', nullable: false })
  @JoinColumn({ name: 'server_id', foreignKeyConstraintName: 'fk_access_log_cursors_server' })
  server?: Relation<Server>;

  @Column({ type: 'int' })
  serverId: number;

  @Column({ type: 'varchar', length: 512 })
  path: string;

  @Column({ type: 'varchar', length: 32 })
  inode: string;

  @Column({ type: 'bigint', default: 0 })
  offset: string;
}
