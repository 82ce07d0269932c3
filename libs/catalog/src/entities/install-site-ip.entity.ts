import { Column, Entity, Index, JoinColumn, ManyToOne, type Relation } from 'typeorm';
import { CatalogEntity } from './base.entity.js';
import { InstallSite } from './install-site.entity.js';
import { ServerIp } from './server-ip.entity.js';
import { Server } from './server.entity.js';

/** An IP from the pool serving a site on one server. */
@Entity('install_site_ips')
@Index('uq_install_site_ips_site_ip', ['installSiteId', 'serverIpId'], { unique: true })
export class InstallSiteIp extends CatalogEntity {
  @ManyToOne(() => InstallSite, { onDelete: 'CASCADE', nullable: false })
  @JoinColumn({ name: 'install_site_id', foreignKeyConstraintName: 'fk_install_site_ips_site' })
  installSite?: Relation<InstallSite>;

  @Column({ type: 'int' })
  installSiteId: number;

  @ManyToOne(() => ServerIp, { onDelete: 'RESTRICT', nullable: false })
  @JoinColumn({ name: 'server_ip_id', foreignKeyConstraintName: 'fk_install_site_ips_server_ip' })
  serverIp?: Relation<ServerIp>;

  @Index('ix_install_site_ips_server_ip')
  @Column({ type: 'int' })
  serverIpId: number;

  @ManyToOne(() => Server, { onDelete: 'RESTRICT', nullable: false })
  @JoinColumn({ name: 'server_id', foreignKeyConstraintName: 'fk_install_site_ips_server' })
  server?: Relation<Server>;

  @Column({ type: 'int' })
  serverId: number;

  /**
   * Equals `serverIpId` when the site holds the IP exclusively (dedicated and
   * floating IPs), NULL for a shared IP. Unique: an IP is held by one site,
   * enforced by the database even when two orders race for the last IP.
   */
  @Index('uq_install_site_ips_exclusive_ip', { unique: true })
  @Column({ type: 'int', nullable: true })
  exclusiveIpId: number | null;
}
