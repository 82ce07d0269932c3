import { Column, Entity, Index, JoinColumn, ManyToOne, type Relation } from 'typeorm';
import { CatalogEntity } from './base.entity.js';
import { Install } from './install.entity.js';
import { Job } from './job.entity.js';

/** One SQL update applied to an install's tenant database. */
@Entity('database_updates')
@Index('uq_database_updates_install_file', ['installId', 'file'], { unique: true })
export class DatabaseUpdate extends CatalogEntity {
  @ManyToOne(() => Install, { onDelete: 'CASCADE', nullable: false })
  @JoinColumn({ name: 'install_id', foreignKeyConstraintName: 'fk_database_updates_install' })
  install?: Relation<Install>;

  @Column({ type: 'int' })
  installId: number;

  /** Path of the SQL file relative to the codebase's updates directory, or a snippet name. */
  @Column({ type: 'varchar', length: 255 })
  file: string;

  @Column({ type: 'varchar', length: 64, nullable: true })
  pluginId: string | null;

  /** SHA-256 of the file's content when it was applied. */
  @Column({ type: 'varchar', length: 64 })
  checksum: string;

  @Column({ type: 'datetime' })
  appliedAt: Date;

  @ManyToOne(() => Job, { onDelete: 'SET NULL', nullable: true })
  @JoinColumn({ name: 'job_id', foreignKeyConstraintName: 'fk_database_updates_job' })
  job?: Relation<Job>;

  @Column({ type: 'int', nullable: true })
  jobId: number | null;
}
