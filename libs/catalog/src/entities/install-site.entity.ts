import { Column, Entity, Index, JoinColumn, ManyToOne, type Relation } from 'typeorm';
import { CatalogEntity } from './base.entity.js';
import { Install } from './install.entity.js';

export const CERT_SOURCES = ['upload', 'acme'] as const;
export type CertSource = (typeof CERT_SOURCES)[number];

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

  /** The installed certificate's end of validity (null: no certificate). */
  @Column({ type: 'datetime', nullable: true })
  certNotAfter: Date | null;

  /** Where the installed certificate came from: uploaded by support or issued through ACME. */
  @Column({ type: 'varchar', length: 8, nullable: true })
  certSource: CertSource | null;

  /** sha256 (hex) of the installed leaf certificate's DER: what a probe expects the dispatchers to serve. */
  @Column({ type: 'varchar', length: 64, nullable: true })
  certSha256: string | null;

  /** The site's certificate is issued and renewed through ACME. */
  @Column({ type: 'boolean', default: false })
  acmeRenew: boolean;

  /** The renewal task's next attempt (expiry minus 21 days with jitter, or after a failure's backoff). */
  @Column({ type: 'datetime', nullable: true })
  acmeNextAttemptAt: Date | null;

  /** Failed ACME attempts in a row (reset by a success); operations are mailed after repeated failures. */
  @Column({ type: 'int', default: 0 })
  acmeFailures: number;

  @Column({ type: 'datetime', nullable: true })
  acmeLastAttemptAt: Date | null;

  /** The last ACME failure, shown by the API (never a secret). */
  @Column({ type: 'varchar', length: 1024, nullable: true })
  acmeLastError: string | null;
}
