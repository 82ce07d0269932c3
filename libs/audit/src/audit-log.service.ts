import { Injectable } from '@nestjs/common';
import { ValidationFailedError } from '@app/common';
import { AuditLogRepository } from './audit-log.repository.js';
import type { AuditEventView, AuditPageView, ListAuditQuery } from './dto/list-audit.query.js';

export const AUDIT_DEFAULT_LIMIT = 100;
export const AUDIT_MAX_LIMIT = 1000;

/** The audit log, read (GET /v1/audit, audit:list): who changed what, when, through which interface. */
@Injectable()
export class AuditLogService {
  constructor(private readonly events: AuditLogRepository) {}

  /** Newest first; `nextBeforeId` continues the listing when the page is full. */
  async list(query: ListAuditQuery): Promise<AuditPageView> {
    const since = query.since === undefined ? undefined : new Date(query.since);
    const until = query.until === undefined ? undefined : new Date(query.until);
    const problems = [
      ...(since && Number.isNaN(since.getTime()) ? [{ field: 'since', problems: ['is not a date'] }] : []),
      ...(until && Number.isNaN(until.getTime()) ? [{ field: 'until', problems: ['is not a date'] }] : []),
      ...(since && until && since.getTime() >= until.getTime() ? [{ field: 'until', problems: ['must be after since'] }] : []),
    ];
    if (problems.length > 0) throw new ValidationFailedError(problems);
    const limit = query.limit ?? AUDIT_DEFAULT_LIMIT;
    const rows = await this.events.find({ installId: query.installId, actor: query.actor, action: query.action, since, until, beforeId: query.beforeId, limit });
    const events: AuditEventView[] = rows.map((e) => ({
      id: e.id,
      at: e.createdAt.toISOString(),
      actor: e.actor,
      via: e.via,
      action: e.action,
      targetType: e.targetType,
      targetId: e.targetId,
      details: e.details,
    }));
    return { events, nextBeforeId: events.length === limit ? events[events.length - 1]!.id : null };
  }
}
