import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { AuditEvent, type AuditInterface } from '../entities/index.js';

export interface NewAuditEvent {
  actor: string;
  via: AuditInterface;
  action: string;
  targetType?: string | null;
  targetId?: string | number | null;
  details?: Record<string, unknown> | null;
}

/** Who makes a change, and through which interface: carried by every audited use case. */
export type AuditActor = Pick<NewAuditEvent, 'actor' | 'via'>;

@Injectable()
export class AuditEventRepository {
  constructor(@InjectRepository(AuditEvent) private readonly events: Repository<AuditEvent>) {}

  async record(event: NewAuditEvent): Promise<void> {
    await this.events.save(
      this.events.create({
        actor: event.actor,
        via: event.via,
        action: event.action,
        targetType: event.targetType ?? null,
        targetId: event.targetId == null ? null : String(event.targetId),
        details: event.details ?? null,
      }),
    );
  }

  latest(limit: number): Promise<AuditEvent[]> {
    return this.events.find({ order: { id: 'DESC' }, take: limit });
  }
}
