import { Inject, Injectable } from '@nestjs/common';
import { DataSource, In, LessThanOrEqual } from 'typeorm';
import { AuditEventRepository, Install, InstallSite, Job, type AuditActor } from '@app/catalog';
import { validateDto } from '@app/common';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { QueueService } from '@app/queue';
import { ACME_ISSUE, CERT_JOB_KINDS, installResourceKey } from './certificate-jobs.js';
import { certificateErrors as errors } from './certificates.errors.js';
import { SiteCertificateService } from './site-certificate.service.js';
import { AcmeRequestDto, SiteCertificateView } from './dto/site-certificate.dto.js';

/** A renewal claimed is not claimed again for this long (its job runs meanwhile; its outcome sets the next attempt). */
const CLAIM_MS = 3_600_000;
const OPEN_JOB = ['ready', 'blocked', 'running'] as const;

/**
 * ACME issuance asked for: by support (API, `site:acme` snippet) or by the
 * renewal task for a site whose next attempt is due. Either queues an
 * ACME_ISSUE job on the install's resource key; the job issues, then
 * installs the pair through the upload's saga.
 */
@Injectable()
export class AcmeRequests {
  constructor(
    private readonly dataSource: DataSource,
    private readonly queue: QueueService,
    private readonly audit: AuditEventRepository,
    private readonly certificates: SiteCertificateService,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
  ) {}

  async request(installId: number, siteId: number, request: AcmeRequestDto, by: AuditActor): Promise<SiteCertificateView> {
    const dto = await validateDto(AcmeRequestDto, request);
    const target = await this.certificates.target(installId, siteId);
    if (!this.config.acme) throw errors.acmeOff();
    if (dto.dryRun) return this.certificates.view(target, null, 'acme', null);
    const jobId = await this.dataSource.transaction(async (tx) => {
      if (this.dataSource.options.type !== 'better-sqlite3') await tx.findOne(Install, { where: { id: installId }, lock: { mode: 'pessimistic_write' } });
      await this.certificates.refuseRunning(tx, installId);
      const { job } = await this.queue.enqueue(ACME_ISSUE, { installId, siteId, renewal: false, actor: by.actor }, { manager: tx, resourceKey: installResourceKey(installId) });
      return job.id;
    });
    this.queue.nudge();
    await this.audit.record({ ...by, action: 'site.certificate.acme-request', targetType: 'install', targetId: installId, details: { siteId, hostname: target.site.hostname, names: target.names, jobId, before: { sha256: target.site.certSha256, notAfter: target.site.certNotAfter?.toISOString() ?? null, source: target.site.certSource } } });
    return this.certificates.view(target, null, 'acme', jobId);
  }

  /**
   * The renewal sweep: every site renewed through ACME whose next attempt is
   * due (on a live install) gets an issue job, unless one of its install's
   * certificate jobs is open. Claimed by a conditional update of the next
   * attempt, so two engines never both queue one. Returns the jobs queued.
   */
  async renewDue(now = new Date()): Promise<number[]> {
    if (!this.config.acme) return [];
    const due = await this.dataSource.getRepository(InstallSite).find({ where: { acmeRenew: true, acmeNextAttemptAt: LessThanOrEqual(now) }, order: { acmeNextAttemptAt: 'ASC' }, take: 100 });
    const queued: number[] = [];
    for (const site of due) {
      const install = await this.dataSource.getRepository(Install).findOneBy({ id: site.installId });
      if (!install || install.status !== 'live') continue;
      const open = await this.dataSource.getRepository(Job).findOne({ where: { kind: In(CERT_JOB_KINDS), resourceKey: installResourceKey(install.id), state: In([...OPEN_JOB]) } });
      if (open) continue;
      const claimed = await this.dataSource
        .createQueryBuilder()
        .update(InstallSite)
        .set({ acmeNextAttemptAt: new Date(now.getTime() + CLAIM_MS) })
        .where('id = :id AND acme_next_attempt_at = :was', { id: site.id, was: site.acmeNextAttemptAt })
        .execute();
      if ((claimed.affected ?? 0) === 0) continue;
      const { job } = await this.queue.enqueue(ACME_ISSUE, { installId: install.id, siteId: site.id, renewal: true, actor: 'acme-renewal' }, { resourceKey: installResourceKey(install.id) });
      queued.push(job.id);
      await this.audit.record({ actor: 'acme-renewal', via: 'cron', action: 'site.certificate.acme-renew', targetType: 'install', targetId: install.id, details: { siteId: site.id, hostname: site.hostname, jobId: job.id, failures: site.acmeFailures, notAfter: site.certNotAfter?.toISOString() ?? null } });
    }
    if (queued.length > 0) this.queue.nudge();
    return queued;
  }
}
