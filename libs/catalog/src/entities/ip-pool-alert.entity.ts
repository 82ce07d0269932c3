import { Column, Entity, Index, JoinColumn, ManyToOne, type Relation } from 'typeorm';
import { CatalogEntity } from './base.entity.js';
import { Server } from './server.entity.js';
import type { ServerIpKind } from './server-ip.entity.js';

/**
 * A server's pool of one kind of IP below the low-water mark: the row lives
 * while it stays below (operations are mailed once, when it is made) and
 * goes when the pool is refilled, so the next crossing mails again.
 */
@Entity('ip_pool_alerts')
@Index('uq_ip_pool_alerts_server_kind', ['serverId', 'kind'], { unique: true })
export class IpPoolAlert extends CatalogEntity {
  @ManyToOne(() => Server, { onDelete: 'CASCADE', nullable: false })
  @JoinColumn({ name: 'server_id', foreignKeyConstraintName: 'fk_ip_pool_alerts_server' })
  server?: Relation<Server>;

  @Column({ type: 'int' })
  serverId: number;

  @Column({ type: 'varchar', length: 16 })
  kind: ServerIpKind;

  /** Free IPs when it crossed. */
  @Column({ type: 'int' })
  free: number;

  @Column({ type: 'boolean', default: false })
  mailed: boolean;
}
