import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { AuditEvent } from '@app/catalog';

export interface AuditFilter {
  installId?: number;
  actor?: string;
  /** Exact, or a prefix when it ends in `*`. */
  action?: string;
  since?: Date;
  until?: Date;
  beforeId?: number;
  limit: number;
}

/** Reads audit_events newest first, keyset-paged by id (the writer is AuditEventRepository in the catalog). */
@Injectable()
export class AuditLogRepository {
  constructor(private readonly dataSource: DataSource) {}

  find(filter: AuditFilter): Promise<AuditEvent[]> {
    const q = this.dataSource.getRepository(AuditEvent).createQueryBuilder('e');
    if (filter.installId !== undefined) q.andWhere('e.targetType = :type AND e.targetId = :target', { type: 'install', target: String(filter.installId) });
    if (filter.actor !== undefined) q.andWhere('e.actor = :actor', { actor: filter.actor });
    if (filter.action !== undefined) {
      if (filter.action.endsWith('*')) q.andWhere("e.action LIKE :action ESCAPE '!'", { action: `${escapeLike(filter.action.slice(0, -1))}%` });
      else q.andWhere('e.action = :action', { action: filter.action });
    }
    if (filter.since !== undefined) q.andWhere('e.createdAt >= :since', { since: filter.since });
    if (filter.until !== undefined) q.andWhere('e.createdAt < :until', { until: filter.until });
    if (filter.beforeId !== undefined) q.andWhere('e.id < :beforeId', { beforeId: filter.beforeId });
    return q.orderBy('e.id', 'DESC').take(filter.limit).getMany();
  }
}

/** `_` and `%` are LIKE wildcards; `!` escapes them the same way on MySQL and SQLite (a backslash is not portable). */
function escapeLike(text: string): string {
  return text.replace(/[!%_]/g, (c) => `!${c}`);
}
