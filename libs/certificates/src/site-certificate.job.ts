import { Injectable } from '@nestjs/common';
import { AuditEventRepository } from '@app/catalog';
import { JobHandler, type JobContext } from '@app/queue';
import { SagaRunner, type SagaDefinition, type SagaStep } from '@app/saga';
import { AcmeOutcomes } from './acme-outcomes.service.js';
import { SITE_CERTIFICATE } from './certificate-jobs.js';
import { SiteCertificateSteps, type SiteCertificateContext, type SiteCertificatePayload } from './site-certificate.steps.js';


export const SITE_CERTIFICATE_SAGA = 'site-certificate';

const NOTHING = async () => undefined;

/**
 * A site's new certificate as a saga (one code path for uploads and ACME):
 * 1. `files`: the pair on every dispatcher serving the install, beside the
 *    pair serving now (file names carry the leaf's sha256 prefix).
 * 2. `record`: the site names it; nginx rebuilds asked in that transaction.
 * 3. `webserver`: each dispatcher's nginx loaded the vhost as the catalog has it.
 * 4. `probe`: each dispatcher serves the new leaf for each of the site's names (TLS, SNI).
 * 5. `config` (pivot: never undone from here): the install's config files re-rendered (scheme).
 * 6. `cleanup`: the previous pair deleted, now that the new one serves.
 * A failure before the pivot puts the previous pair back in the catalog,
 * waits for nginx to load it, then removes the new files.
 */
@Injectable()
export class SiteCertificateJob {
  constructor(
    private readonly steps: SiteCertificateSteps,
    private readonly sagas: SagaRunner,
    private readonly audit: AuditEventRepository,
    private readonly acme: AcmeOutcomes,
  ) {}

  @JobHandler(SITE_CERTIFICATE)
  async run(payload: SiteCertificatePayload, job: JobContext): Promise<void> {
    await this.sagas.run(this.definition(job.jobId), payload, job);
  }

  definition(jobId: number | null): SagaDefinition<SiteCertificateContext, SiteCertificatePayload> {
    const s = this.steps;
    const step = (name: string, execute: SagaStep<SiteCertificateContext>['execute'], compensate: SagaStep<SiteCertificateContext>['compensate']): SagaStep<SiteCertificateContext> => ({ name, execute, compensate });
    const change = ({ payload: p, site }: SiteCertificateContext) => ({
      siteId: site.id,
      hostname: site.hostname,
      source: p.source,
      jobId,
      before: { sha256: p.previous.sha256, notAfter: p.previous.notAfter, source: p.previous.source },
      after: { sha256: p.sha256, notAfter: p.notAfter, source: p.source },
    });
    return {
      name: SITE_CERTIFICATE_SAGA,
      pivot: 'config',
      steps: [
        step('files', (c, io) => s.writeFiles(c, io), (c, io) => s.removeNewFiles(c, io)),
        step('record', (c, io) => s.record(c, io), (c, io) => s.restore(c, io)),
        // Undone by `record`'s compensation, which waits for nginx to load the previous pair.
        step('webserver', (c, io) => s.webServer(c, io), NOTHING),
        step('probe', (c, io) => s.probeServed(c, io), NOTHING),
        step('config', (c, io) => s.requestConfig(c, io), NOTHING),
        step('cleanup', (c, io) => s.removePrevious(c, io), NOTHING),
      ],
      loadContext: (payload) => s.loadContext(payload),
      onCompleted: async (c) => {
        await this.audit.record({ actor: `job:${jobId}`, via: 'worker', action: 'site.certificate.installed', targetType: 'install', targetId: c.install.id, details: change(c) });
      },
      onCompensated: async (c, failure) => {
        await this.audit.record({ actor: `job:${jobId}`, via: 'worker', action: 'site.certificate.install-failed', targetType: 'install', targetId: c.install.id, details: { ...change(c), failure: failure.slice(0, 500) } });
        // An issued certificate that could not be installed is an ACME attempt that failed: counted, backed off, the old one serving.
        if (c.payload.source === 'acme') await this.acme.failed(c.site.id, `issued, but not installed: ${failure}`);
      },
    };
  }
}
