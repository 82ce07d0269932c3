import { Inject, Injectable } from '@nestjs/common';
import { DataSource, In, type EntityManager } from 'typeorm';
import { AuditEventRepository, Install, InstallSite, Job, Server, type AuditActor, type CertSource } from '@app/catalog';
import { DomainError, NotFoundError, validateDto } from '@app/common';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { encryptSecret } from '@app/installs';
import { QueueService } from '@app/queue';
import { NginxRebuilds } from '@app/webserver';
import { pairFilesOn } from './cert-files.js';
import { checkPair, type CheckedPair } from './cert-checks.js';
import { CERT_JOB_KINDS, installResourceKey, SITE_CERTIFICATE } from './certificate-jobs.js';
import { certificateErrors as errors } from './certificates.errors.js';
import { certStateOf } from './site-certificate.steps.js';
import { SiteCertificateView, UploadCertificateDto } from './dto/site-certificate.dto.js';

const OPEN_JOB = ['ready', 'blocked', 'running'] as const;

/** The install, its site and the dispatchers a certificate goes to, after every refusal the catalog answers. */
export interface CertificateTarget {
  install: Install;
  site: InstallSite;
  dispatchers: Server[];
  names: string[];
}

/**
 * Installs a site's certificate (the seed's "Change SSL"): an uploaded pair
 * is checked (PEM, key, validity, expiry, names, chain order) before
 * anything changes, then the saga (SiteCertificateJob) is queued. ACME
 * issuance comes here too with the pair it got (`queueInstall`): one code
 * path. The API and the `site:certificate` snippet both call `upload`.
 */
@Injectable()
export class SiteCertificateService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly queue: QueueService,
    private readonly audit: AuditEventRepository,
    private readonly rebuilds: NginxRebuilds,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
  ) {}

  async upload(installId: number, siteId: number, request: UploadCertificateDto, by: AuditActor): Promise<SiteCertificateView> {
    const dto = await validateDto(UploadCertificateDto, request);
    const target = await this.target(installId, siteId);
    const checked = checkPair(dto.certificate, dto.key, { names: target.names, allowExpiringSoon: dto.allowExpiringSoon ?? false });
    if (dto.dryRun) return this.view(target, checked, 'upload', null);
    const jobId = await this.queueInstall(target, checked, 'upload', { by, refuseRunning: true });
    return this.view(target, checked, 'upload', jobId);
  }

  /**
   * Queues the saga installing `checked` on the site; the site's certificate
   * now is what a failure puts back. `refuseRunning`: refused while another
   * certificate job of the install is open (the ACME issue job, itself one,
   * queues its install without).
   */
  async queueInstall(target: CertificateTarget, checked: CheckedPair, source: CertSource, options: { by: AuditActor; refuseRunning: boolean; acmeNextAttemptAt?: Date | null }): Promise<number> {
    const { install, site } = target;
    const { jobId, before } = await this.dataSource.transaction(async (tx) => {
      if (this.dataSource.options.type !== 'better-sqlite3') await tx.findOne(Install, { where: { id: install.id }, lock: { mode: 'pessimistic_write' } });
      if (options.refuseRunning) await this.refuseRunning(tx, install.id);
      const now = await tx.findOneByOrFail(InstallSite, { id: site.id });
      const previous = certStateOf(now);
      const { job } = await this.queue.enqueue(
        SITE_CERTIFICATE,
        {
          installId: install.id,
          siteId: site.id,
          source,
          chainPem: checked.chainPem,
          keyEnc: encryptSecret(this.config.secretsKey, checked.keyPem),
          sha256: checked.sha256,
          notAfter: checked.notAfter.toISOString(),
          previous,
          acmeNextAttemptAt: options.acmeNextAttemptAt?.toISOString() ?? null,
        },
        { manager: tx, resourceKey: installResourceKey(install.id) },
      );
      return { jobId: job.id, before: previous };
    });
    this.queue.nudge();
    await this.audit.record({
      ...options.by,
      action: source === 'upload' ? 'site.certificate.upload' : 'site.certificate.issued',
      targetType: 'install',
      targetId: install.id,
      details: {
        siteId: site.id,
        hostname: site.hostname,
        jobId,
        before: { sha256: before.sha256, notAfter: before.notAfter, source: before.source },
        after: { sha256: checked.sha256, notAfter: checked.notAfter.toISOString(), source, issuer: checked.issuer },
      },
    });
    return jobId;
  }

  /** Every refusal the catalog answers: unknown install or site (404), an install not live, no dispatcher up, dispatchers of different layouts. */
  async target(installId: number, siteId: number, m: EntityManager = this.dataSource.manager): Promise<CertificateTarget> {
    const install = await m.findOneBy(Install, { id: installId });
    if (!install) throw new NotFoundError('install', installId);
    const site = await m.findOneBy(InstallSite, { id: siteId, installId });
    if (!site) throw new NotFoundError(`site of install ${installId}`, siteId);
    if (install.status !== 'live') throw errors.notLive(install.id, install.status);
    const dispatchers = (await this.rebuilds.dispatchersOf(install.id, m)).filter((s) => s.state !== 'down');
    if (dispatchers.length === 0) throw errors.noDispatcher(install.id);
    // One catalog path serves every dispatcher: production servers share one layout.
    const roots = [...new Set(dispatchers.map((s) => s.certsRoot))];
    if (roots.length > 1) throw new DomainError('CERTS_ROOTS_DIFFER', `the dispatchers of install ${install.id} keep certificates in different directories (${roots.join(', ')}): one path cannot name the pair on all`, 409, { roots });
    return { install, site, dispatchers, names: [...new Set([site.hostname, ...(site.secureHostname ? [site.secureHostname] : [])])] };
  }

  async refuseRunning(m: EntityManager, installId: number): Promise<void> {
    const open = await m.findOne(Job, { where: { kind: In(CERT_JOB_KINDS), resourceKey: installResourceKey(installId), state: In([...OPEN_JOB]) } });
    if (open) throw errors.changeRunning(installId, open.id);
  }

  view(target: CertificateTarget, checked: CheckedPair | null, source: CertSource, jobId: number | null): SiteCertificateView {
    const { install, site, dispatchers, names } = target;
    const files = checked ? pairFilesOn(dispatchers[0]!, install, checked.sha256) : null;
    return Object.assign(new SiteCertificateView(), {
      installId: install.id,
      siteId: site.id,
      hostname: site.hostname,
      names,
      source,
      sha256: checked?.sha256 ?? null,
      notBefore: checked?.notBefore.toISOString() ?? null,
      notAfter: checked?.notAfter.toISOString() ?? null,
      issuer: checked?.issuer ?? null,
      subjectAltName: checked?.subjectAltName ?? null,
      servers: dispatchers.map((s) => s.hostname),
      files: files ? { certificate: files.pem, key: files.key } : null,
      previous: { sha256: site.certSha256, notAfter: site.certNotAfter?.toISOString() ?? null, source: site.certSource },
      jobId,
      dryRun: jobId === null,
    });
  }
}
