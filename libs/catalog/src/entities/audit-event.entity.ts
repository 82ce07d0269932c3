import { Column, Entity, Index } from 'typeorm';
import { CatalogEntity } from './base.entity.js';

export const AUDIT_INTERFACES = ['api', 'cli', 'worker', 'cron', 'engine'] as const;
export type AuditInterface = (typeof AUDIT_INTERFACES)[number];

/** Who changed what, when, through which interface. */
@Entity('audit_events')
@Index('ix_audit_events_target', ['targetType', 'targetId'])
@Index('ix_audit_events_created', ['createdAt'])
export class AuditEvent extends CatalogEntity {
  /** Token name, operator login or engine role; never a secret. */
  @Column({ type: 'varchar', length: 128 })
  actor: string;

  @Column({ type: 'varchar', length: 16 })
  via: AuditInterface;

  @Column({ type: 'varchar', length: 64 })
  action: string;

  @Column({ type: 'varchar', length: 32, nullable: true })
  targetType: string | null;

  @Column({ type: 'varchar', length: 64, nullable: true })
  targetId: string | null;

  @Column({ type: 'simple-json', nullable: true })
  details: Record<string, unknown> | null;
}
