import { Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { AuditEventRepository, type AuditActor } from '@app/catalog';
import { DomainError } from '@app/common';
import { QueueService, sqlDialect, type JobKind } from '@app/queue';
import { installResourceKey } from './site-job-kinds.js';
import { siteErrors } from './sites.errors.js';
import type { SiteOperationPlanView, SiteOperationView } from './dto/site-ops.dto.js';

/** Conflicts with a concurrent request (an IP taken, a deadlock): the transaction runs again. */
const MAX_TRIES = 8;

/**
 * What every site operation's request does once its checks passed: one
 * transaction (the install's row locked, the refusals checked again, the
 * catalog claims made, the saga job queued on `install:<id>`), then the
 * audit event with who asked, through which interface, before and after.
 * A duplicate key on site_names is a name claimed meanwhile (409); on
 * another index (an IP taken), the transaction runs again.
 */
@Injectable()
export class SiteRequests {
  constructor(
    private readonly dataSource: DataSource,
    private readonly jobs: QueueService,
    private readonly audit: AuditEventRepository,
  ) {}

  async enqueue<P extends object>(
    kind: JobKind<P>,
    installId: number,
    inTransaction: (m: EntityManager) => Promise<{ payload: P; plan?: SiteOperationPlanView; siteId?: number | null }>,
    names: readonly string[],
  ): Promise<{ jobId: number; payload: P; plan?: SiteOperationPlanView; siteId?: number | null }> {
    const dialect = sqlDialect(this.dataSource);
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await this.dataSource.transaction(async (m) => {
          const made = await inTransaction(m);
          const { job } = await this.jobs.enqueue(kind, made.payload, { manager: m, resourceKey: installResourceKey(installId) });
          return { ...made, jobId: job.id };
        });
        this.jobs.nudge();
        return result;
      } catch (error) {
        if (error instanceof DomainError) throw error;
        const message = String((error as { message?: unknown })?.message ?? '');
        if (dialect.isDuplicateKey(error) && message.includes('site_names')) throw siteErrors.hostnameTaken([...names]);
        if (!(dialect.isDuplicateKey(error) || dialect.isRetryableConflict(error)) || attempt >= MAX_TRIES) throw error;
        await new Promise((r) => setTimeout(r, Math.random() * 20 * attempt));
      }
    }
  }

  /** The request's audit event: who, through which interface, the operation's before and after. */
  async record(by: AuditActor, action: string, installId: number, details: { before: unknown; after: unknown; [key: string]: unknown }): Promise<void> {
    await this.audit.record({ ...by, action, targetType: 'install', targetId: installId, details });
  }
}

/** The answer of every operation: its plan, the job (null on a dry run). */
export function operationView(operation: string, installId: number, siteId: number | null, plan: SiteOperationPlanView, jobId: number | null): SiteOperationView {
  return { installId, siteId, operation, plan, jobId, dryRun: jobId === null };
}
