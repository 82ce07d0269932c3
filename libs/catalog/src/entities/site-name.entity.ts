import { Column, Entity, Index, JoinColumn, ManyToOne, type Relation } from 'typeorm';
import { CatalogEntity } from './base.entity.js';
import { InstallSite } from './install-site.entity.js';
import { Install } from './install.entity.js';

/**
 * A name an install claims: every hostname and secure hostname of its
 * sites, while it is preparing, building, live or being removed (the rows
 * go when it fails or is removed). The unique index makes "every hostname
 * and secure hostname belongs to at most one install" hold in the database
 * itself: a secure hostname can no more take another shop's hostname than
 * a hostname can. On MySQL the column is `utf8mb4_bin` (set by the
 * migration): names compare byte for byte, never accent- or
 * case-insensitively (they are stored lower-case ASCII).
 */
@Entity('site_names')
export class SiteName extends CatalogEntity {
  @ManyToOne(() => Install, { onDelete: 'CASCADE', nullable: false })
  @JoinColumn({ name: 'install_id', foreignKeyConstraintName: 'fk_site_names_install' })
  install?: Relation<Install>;

  @Index('ix_site_names_install')
  @Column({ type: 'int' })
  installId: number;

  @ManyToOne(() => InstallSite, { onDelete: 'CASCADE', nullable: false })
  @JoinColumn({ name: 'install_site_id', foreignKeyConstraintName: 'fk_site_names_site' })
  site?: Relation<InstallSite>;

  @Index('ix_site_names_site')
  @Column({ type: 'int' })
  installSiteId: number;

  @Index('uq_site_names_name', { unique: true })
  @Column({ type: 'varchar', length: 253 })
  name: string;
}
