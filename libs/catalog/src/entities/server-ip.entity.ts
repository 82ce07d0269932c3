import { Column, Entity, Index, JoinColumn, ManyToOne, type Relation } from 'typeorm';
import { CatalogEntity } from './base.entity.js';
import { Server } from './server.entity.js';

export const SERVER_IP_KINDS = ['shared', 'dedicated', 'floating'] as const;
export type ServerIpKind = (typeof SERVER_IP_KINDS)[number];

/**
 * A public IP in a server's pool. Which site holds a dedicated or floating IP
 * is recorded once, in install_site_ips.exclusive_ip_id.
 */
@Entity('server_ips')
@Index('ix_server_ips_server_kind', ['serverId', 'kind'])
export class ServerIp extends CatalogEntity {
  @ManyToOne(() => Server, { onDelete: 'RESTRICT', nullable: false })
  @JoinColumn({ name: 'server_id', foreignKeyConstraintName: 'fk_server_ips_server' })
  server?: Relation<Server>;

  /** The server whose pool the IP belongs to. */
  @Column({ type: 'int' })
  serverId: number;

  @Index('uq_server_ips_ip', { unique: true })
  @Column({ type: 'varchar', length: 45 })
  ip: string;

  @Column({ type: 'varchar', length: 16, default: 'shared' })
  kind: ServerIpKind;

  /** Failover group of a floating IP (the seed's carp1, carp2). */
  @Column({ type: 'varchar', length: 32, nullable: true })
  failoverGroup: string | null;

  @ManyToOne(() => Server, { onDelete: 'SET NULL', nullable: true })
  @JoinColumn({ name: 'active_server_id', foreignKeyConstraintName: 'fk_server_ips_active_server' })
  activeServer?: Relation<Server>;

  /** The server carrying a floating IP right now (its owner, or a peer after failover). */
  @Column({ type: 'int', nullable: true })
  activeServerId: number | null;
}
