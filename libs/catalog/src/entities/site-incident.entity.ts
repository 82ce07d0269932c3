import { Column, Entity, Index, JoinColumn, ManyToOne, type Relation } from 'typeorm';
import { CatalogEntity } from './base.entity.js';
import { Install } from './install.entity.js';

/**
 * A live install that is failing its health probes now (site health): its
 * consecutive failed rounds. The row exists only while it fails or an
 * incident is open; a healthy install has none.
 */
@Entity('site_health')
export class SiteHealthState extends CatalogEntity {
  @ManyToOne(() => Install, { onDelete: 'CASCADE', nullable: false })
  @JoinColumn({ name: 'install_id', foreignKeyConstraintName: 'fk_site_health_install' })
  install?: Relation<Install>;

  @Index('uq_site_health_install', { unique: true })
  @Column({ type: 'int' })
  installId: number;

  /** Consecutive rounds in which a request through a dispatcher failed. */
  @Column({ type: 'int', default: 0 })
  failures: number;

  @Column({ type: 'varchar', length: 1024, nullable: true })
  lastProblem: string | null;

  @Column({ type: 'datetime', nullable: true })
  lastCheckedAt: Date | null;

  @Column({ type: 'int', nullable: true })
  openIncidentId: number | null;
}

/** A site that failed its probes N rounds in a row, until it answers again: operations are mailed once when it opens and once when it closes. */
@Entity('site_incidents')
@Index('ix_site_incidents_install', ['installId', 'id'])
@Index('ix_site_incidents_open', ['closedAt'])
export class SiteIncident extends CatalogEntity {
  @ManyToOne(() => Install, { onDelete: 'CASCADE', nullable: false })
  @JoinColumn({ name: 'install_id', foreignKeyConstraintName: 'fk_site_incidents_install' })
  install?: Relation<Install>;

  @Column({ type: 'int' })
  installId: number;

  @Column({ type: 'datetime' })
  openedAt: Date;

  @Column({ type: 'datetime', nullable: true })
  closedAt: Date | null;

  /** What failed when it opened (`shop.example.com via d1 (10.0.0.1:80/): HTTP 502 ...`). */
  @Column({ type: 'varchar', length: 1024 })
  problem: string;

  @Column({ type: 'varchar', length: 1024, nullable: true })
  lastProblem: string | null;

  /** Rounds failed while it was open (from the one that opened it). */
  @Column({ type: 'int', default: 0 })
  failedRounds: number;

  /** The manifest's cache directories were emptied when it opened. */
  @Column({ type: 'boolean', default: false })
  cachesCleared: boolean;

  @Column({ type: 'boolean', default: false })
  mailedOpened: boolean;

  @Column({ type: 'boolean', default: false })
  mailedClosed: boolean;
}
