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

  @Index('ix_install_sites_hostname')
  @Column({ type: 'varchar', length: 253 })
  hostname: string;

  /**
   * Equals `hostname` while the install claims it (preparing, building, live,
   * removing) and is NULL once the install is failed or removed. The unique
   * index makes "a hostname belongs to at most one live install" hold in the
   * database itself; NULLs never collide, in MySQL as in SQLite.
   */
  @Index('uq_install_sites_live_hostname', { unique: true })
  @Column({ type: 'varchar', length: 253, nullable: true })
  liveHostname: string | null;

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
