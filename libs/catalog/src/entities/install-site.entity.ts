import { Column, Entity, Index, JoinColumn, ManyToOne, type Relation } from 'typeorm';
import { CatalogEntity } from './base.entity.js';
import { Install } from './install.entity.js';

/** One hostname (and its secure twin) served by an install. */
@Entity('install_sites')
export class InstallSite extends CatalogEntity {
  @ManyToOne(() => Install, { onDelete: 'CASCADE', nullable: false })
  @JoinColumn({ name: 'install_id', foreignKeyConstraintName: 'fk_install_sites_install' })
  install?: Relation<Install>;

  @Column({ type: 'int' })
  installId: number;

  /** Lower-case ASCII (IDN as punycode); `utf8mb4_bin` on MySQL. Claimed, while the install is, in `site_names`. */
  @Index('ix_install_sites_hostname')
  @Column({ type: 'varchar', length: 253 })
  hostname: string;

  @Column({ type: 'varchar', length: 253, nullable: true })
  secureHostname: string | null;

  @Column({ type: 'varchar', length: 255, default: '/' })
  relUrl: string;

  @Column({ type: 'varchar', length: 255, default: '/' })
  secureRelUrl: string;

  @Column({ type: 'varchar', length: 512, nullable: true })
  sslPemPath: string | null;

  @Column({ type: 'varchar', length: 512, nullable: true })
  sslKeyPath: string | null;
}
