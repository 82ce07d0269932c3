import { Column, Entity, Index, JoinColumn, ManyToOne, type Relation } from 'typeorm';
import { CatalogEntity } from './base.entity.js';
import { Server } from './server.entity.js';

/**
 * A dispatcher taking part in floating IP failover: where its keepalived
 * reads its configuration, the interface that carries the floating IPs,
 * and what the engine last applied there.
 */
@Entity('failover_nodes')
export class FailoverNode extends CatalogEntity {
  @ManyToOne(() => Server, { onDelete: 'CASCADE', nullable: false })
  @JoinColumn({ name: 'server_id', foreignKeyConstraintName: 'fk_failover_nodes_server' })
  server?: Relation<Server>;

  @Index('uq_failover_nodes_server', { unique: true })
  @Column({ type: 'int' })
  serverId: number;

  /** The interface that carries the adverts and the floating IPs (eth0). */
  @Column({ type: 'varchar', length: 15 })
  interface: string;

  /** keepalived's directory on the server: keepalived.conf, the ip-manager script, its state file and journal. */
  @Column({ type: 'varchar', length: 512 })
  confDir: string;

  /** keepalived's (parent) pid file: reloaded with SIGHUP; none or absent: not running, nothing to reload. */
  @Column({ type: 'varchar', length: 512, nullable: true })
  pidFile: string | null;

  /** sha256 of the configuration and state file last applied. */
  @Column({ type: 'varchar', length: 64, nullable: true })
  appliedDigest: string | null;

  @Column({ type: 'datetime', nullable: true })
  appliedAt: Date | null;

  @Column({ type: 'varchar', length: 1024, nullable: true })
  lastError: string | null;
}
