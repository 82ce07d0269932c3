import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { AuditEventRepository, Install, InstallSite } from '@app/catalog';
import { JobHandler, type JobContext } from '@app/queue';
import { SagaRunner, type SagaDefinition, type StepIO } from '@app/saga';
import { namesOf, permanent, SiteEffects } from './site-effects.js';
import { SITE_ADD } from './site-job-kinds.js';
import type { AddSitePayload } from './site-payloads.js';
import { operationContext, sagaStep, type OperationContext } from './site-saga.js';

export const SITE_ADD_SAGA = 'site-add';

/**
 * The seed's "Adding a new site" as a saga. The request claimed the names
 * and the IPs and made the site's row; then:
 * 1. `reserve`: the row is still there (undone: the row goes, with its
 *    names and IPs, and the config files and vhosts follow the catalog).
 * 2. `sql`: the manifest's `add_site` SQL templates (no undo: a template
 *    has no inverse; what it wrote stays in the shop's database).
 * 3. `config`: every config file rendered again on every server.
 * 4. `dns`: the install's names published (undone: the new names removed).
 * 5. `webserver`: every dispatcher's nginx serves the new vhost.
 * 6. `probe`: the new site answers through every dispatcher.
 */
@Injectable()
export class SiteAddJob {
  constructor(
    private readonly dataSource: DataSource,
    private readonly effects: SiteEffects,
    private readonly sagas: SagaRunner,
    private readonly audit: AuditEventRepository,
  ) {}

  @JobHandler(SITE_ADD)
  async run(payload: AddSitePayload, job: JobContext): Promise<void> {
    await this.sagas.run(this.definition(job.jobId), payload, job);
  }

  definition(jobId: number): SagaDefinition<OperationContext<AddSitePayload>, AddSitePayload> {
    const e = this.effects;
    const none = async () => undefined;
    return {
      name: SITE_ADD_SAGA,
      steps: [
        sagaStep('reserve', (c, io) => this.checkRow(c, io), (c, io) => this.undoRow(c, io)),
        sagaStep('sql', async ({ payload: p }, io) => {
          const site = await this.row(p);
          await e.runSqlTemplates(await e.context(p.installId, jobId), 'add_site', site, null, `site.add:${p.siteId}:job${jobId}`, io);
        }, async (_c, io) => io.log('an add_site SQL template has no undo: what it wrote stays in the shop\'s database')),
        sagaStep('config', async ({ payload: p }, io) => e.renderConfig(await e.context(p.installId, jobId), io), none),
        sagaStep('dns', async ({ payload: p }, io) => void (await e.publish(p.installId, io)), async ({ payload: p }, io) => void (await e.unpublish(p.names, io))),
        sagaStep('webserver', async ({ payload: p }, io) => e.awaitVhosts(await e.context(p.installId, jobId), io), none),
        sagaStep('probe', async ({ payload: p }, io) => e.probeSite(p.installId, (await this.row(p)).hostname, io), none),
      ],
      loadContext: async (payload) => operationContext(payload, jobId),
      onCompleted: async ({ payload: p }) => {
        const site = await this.dataSource.getRepository(InstallSite).findOneBy({ id: p.siteId });
        await this.audit.record({ actor: `job:${jobId}`, via: 'worker', action: 'site.added', targetType: 'install', targetId: p.installId, details: { requestedBy: p.requestedBy, jobId, before: null, after: { siteId: p.siteId, hostname: site?.hostname, names: p.names } } });
      },
      onCompensated: async ({ payload: p }, failure) => {
        await this.audit.record({ actor: `job:${jobId}`, via: 'worker', action: 'site.add-failed', targetType: 'install', targetId: p.installId, details: { requestedBy: p.requestedBy, jobId, before: null, after: null, names: p.names, failure: failure.slice(0, 500) } });
      },
    };
  }

  private async row(p: AddSitePayload): Promise<InstallSite> {
    const site = await this.dataSource.getRepository(InstallSite).findOneBy({ id: p.siteId, installId: p.installId });
    if (!site) throw permanent(`site ${p.siteId} of install ${p.installId} is gone`);
    return site;
  }

  private async checkRow({ payload: p }: OperationContext<AddSitePayload>, io: StepIO): Promise<void> {
    const site = await this.row(p);
    const install = await this.dataSource.getRepository(Install).findOneByOrFail({ id: p.installId });
    if (install.status !== 'live') throw permanent(`install ${install.id} is ${install.status}: only a live install gets a site`);
    io.log(`site ${site.id}: ${namesOf(site).join(', ')} claimed for install ${p.installId}`);
  }

  /** The site's row gone (its names and IPs with it), then the config files and vhosts as the catalog has them without it. */
  private async undoRow({ payload: p, jobId }: OperationContext<AddSitePayload>, io: StepIO): Promise<void> {
    const gone = await this.dataSource.getRepository(InstallSite).delete({ id: p.siteId, installId: p.installId });
    io.log((gone.affected ?? 0) > 0 ? `site ${p.siteId} removed: ${p.names.join(', ')} and its IPs released` : `site ${p.siteId} was gone already`);
    const context = await this.effects.context(p.installId, jobId);
    await this.effects.renderConfig(context, io);
    await this.effects.awaitVhosts(context, io);
  }
}
