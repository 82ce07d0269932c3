import { Inject, Injectable } from '@nestjs/common';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { DomainError } from '@app/common';
import { JobHandler, PermanentJobError, type JobContext } from '@app/queue';
import { AcmeChallenges } from './acme-challenges.js';
import { AcmeIssuer } from './acme-issuer.service.js';
import { AcmeOutcomes, nextRenewal } from './acme-outcomes.service.js';
import { checkPair } from './cert-checks.js';
import { ACME_ISSUE, type AcmeIssuePayload } from './certificate-jobs.js';
import { SiteCertificateService } from './site-certificate.service.js';

/**
 * Issues a site's certificate through ACME: the pre-flight (each name
 * fetched through, a token of ours served by the dispatchers), the order
 * (HTTP-01), the pair checked as an upload is, then its install queued
 * (the upload's saga, source `acme`, renewed from now on). Any failure is
 * the site's ACME failure: counted, kept, backed off, mailed after three;
 * the certificate serving is not touched.
 */
@Injectable()
export class AcmeIssueJob {
  constructor(
    private readonly certificates: SiteCertificateService,
    private readonly challenges: AcmeChallenges,
    private readonly issuer: AcmeIssuer,
    private readonly outcomes: AcmeOutcomes,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
  ) {}

  @JobHandler(ACME_ISSUE)
  async run(payload: AcmeIssuePayload, job: JobContext): Promise<void> {
    const log = (line: string) => job.log(line);
    try {
      if (!this.config.acme) throw new Error('ACME is not configured on this engine (ACME_DIRECTORY_URL)');
      const target = await this.certificates.target(payload.installId, payload.siteId);
      await this.outcomes.attempted(target.site.id);
      const preflight = await this.challenges.preflight(target.dispatchers, target.names);
      for (const answer of preflight) log(answer.ok ? `pre-flight: ${answer.name} (${answer.addresses.join(', ')}) reaches the dispatchers` : `pre-flight: ${answer.problem}`);
      const failing = preflight.filter((a) => !a.ok);
      if (failing.length > 0) throw new Error(`pre-flight failed, the CA was not asked: ${failing.map((a) => a.problem).join('; ')}`);
      const issued = await this.issuer.issue(target.names, target.dispatchers, log);
      const checked = checkPair(issued.certificate, issued.key, { names: target.names, allowExpiringSoon: true });
      log(`issued ${checked.sha256.slice(0, 16)} by ${checked.issuer}, valid until ${checked.notAfter.toISOString()}`);
      const jobId = await this.certificates.queueInstall(target, checked, 'acme', {
        by: { actor: `job:${job.jobId}`, via: 'worker' },
        refuseRunning: false,
        acmeNextAttemptAt: nextRenewal(checked.notAfter, this.config.acme.renewDays),
      });
      log(`install queued: job ${jobId}`);
    } catch (error) {
      const message = error instanceof DomainError ? `${error.code}: ${error.message}` : error instanceof Error ? error.message : String(error);
      // Recording the failure (backoff, last error, mail) must not hide the failure itself: said, then the failure thrown.
      const outcome = await this.outcomes.failed(payload.siteId, message).catch((recording: unknown) => {
        job.error(`the failure could not be recorded on the site (no backoff set, no mail): ${recording instanceof Error ? recording.message : String(recording)}`);
        return null;
      });
      if (outcome) job.error(`ACME failure ${outcome.failures} in a row; next attempt ${outcome.nextAttemptAt.toISOString()}${outcome.mailed ? '; operations mailed' : ''}`);
      throw new PermanentJobError(message);
    }
  }
}
