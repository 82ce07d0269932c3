import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { AuditEventRepository, InstallSite, Server, SiteName } from '@app/catalog';
import { JobHandler, type JobContext } from '@app/queue';
import { SagaRunner, type SagaDefinition, type StepIO } from '@app/saga';
import { SiteCatalog } from './site-catalog.js';
import { SiteEffects } from './site-effects.js';
import { SITE_REMOVE } from './site-job-kinds.js';
import type { RemoveSitePayload } from './site-payloads.js';
import { operationContext, sagaStep, type OperationContext } from './site-saga.js';

export const SITE_REMOVE_SAGA = 'site-remove';

/**
 * A site removed from a live install as a saga:
 * 1. `detach`: the site's row deleted, its names and IPs released with it
 *    (undone: the row put back as it was, same id, its names and IPs, the
 *    config files, vhosts and DNS following the catalog again).
 * 2. `config`: every config file rendered again without it.
 * 3. `webserver`: every dispatcher's nginx without its server blocks.
 * 4. `dns`: its names' records removed from the zones we manage.
 * 5. `certificate` (the pivot: never undone, retried forward): its
 *    certificate and key files removed from the dispatchers.
 */
@Injectable()
export class SiteRemoveJob {
  constructor(
    private readonly dataSource: DataSource,
    private readonly catalog: SiteCatalog,
    private readonly effects: SiteEffects,
    private readonly sagas: SagaRunner,
    private readonly audit: AuditEventRepository,
  ) {}

  @JobHandler(SITE_REMOVE)
  async run(payload: RemoveSitePayload, job: JobContext): Promise<void> {
    await this.sagas.run(this.definition(job.jobId), payload, job);
  }

  definition(jobId: number): SagaDefinition<OperationContext<RemoveSitePayload>, RemoveSitePayload> {
    const e = this.effects;
    const none = async () => undefined;
    return {
      name: SITE_REMOVE_SAGA,
      pivot: 'certificate',
      steps: [
        sagaStep('detach', (c, io) => this.detach(c.payload, io), (c, io) => this.putBack(c, io)),
        sagaStep('config', async ({ payload: p }, io) => e.renderConfig(await e.context(p.installId, jobId), io), none),
        sagaStep('webserver', async ({ payload: p }, io) => e.awaitVhosts(await e.context(p.installId, jobId), io), none),
        sagaStep('dns', async ({ payload: p }, io) => void (await e.unpublish(p.site.names, io)), none),
        sagaStep('certificate', async ({ payload: p }, io) => {
          const context = await e.context(p.installId, jobId);
          await e.removeCertificate(context.install, [context.master, ...context.replicas], [p.site.sslPemPath, p.site.sslKeyPath], io);
        }, none),
      ],
      loadContext: async (payload) => operationContext(payload, jobId),
      onCompleted: async ({ payload: p }) => {
        await this.audit.record({ actor: `job:${jobId}`, via: 'worker', action: 'site.removed', targetType: 'install', targetId: p.installId, details: { requestedBy: p.requestedBy, jobId, before: p.site, after: null } });
      },
      onCompensated: async ({ payload: p }, failure) => {
        await this.audit.record({ actor: `job:${jobId}`, via: 'worker', action: 'site.remove-failed', targetType: 'install', targetId: p.installId, details: { requestedBy: p.requestedBy, jobId, before: p.site, after: p.site, failure: failure.slice(0, 500) } });
      },
    };
  }

  private async detach(p: RemoveSitePayload, io: StepIO): Promise<void> {
    const gone = await this.dataSource.getRepository(InstallSite).delete({ id: p.site.id, installId: p.installId });
    io.log((gone.affected ?? 0) > 0 ? `site ${p.site.id} removed from the catalog: ${p.site.names.join(', ')} and ${p.site.ips.length} IP(s) released` : `site ${p.site.id} was gone already`);
  }

  /** The site's row back as it was (same id), its names (unless claimed meanwhile: said so) and IPs (another free one where its own was taken). */
  private async putBack({ payload: p, jobId }: OperationContext<RemoveSitePayload>, io: StepIO): Promise<void> {
    const s = p.site;
    await this.dataSource.transaction(async (m) => {
      if (!(await m.findOneBy(InstallSite, { id: s.id }))) {
        await m.insert(InstallSite, {
          id: s.id, installId: p.installId, hostname: s.hostname, secureHostname: s.secureHostname, relUrl: s.relUrl, secureRelUrl: s.secureRelUrl,
          sslPemPath: s.sslPemPath, sslKeyPath: s.sslKeyPath, certNotAfter: s.certNotAfter ? new Date(s.certNotAfter) : null, certSource: s.certSource, certSha256: s.certSha256, acmeRenew: s.acmeRenew,
        });
      }
      for (const name of s.names) {
        const claimed = await m.findOneBy(SiteName, { name });
        if (!claimed) await m.insert(SiteName, { installId: p.installId, installSiteId: s.id, name });
        else if (claimed.installSiteId !== s.id) io.log(`${name} was claimed by install ${claimed.installId} meanwhile: not given back`);
      }
      const held = await this.catalog.ipRows(m, [s.id]);
      for (const row of s.ips) {
        if (held.some((h) => h.serverIpId === row.serverIpId)) continue;
        let ipId = row.serverIpId;
        if (row.exclusive && (await this.catalog.heldElsewhere(m, ipId, s.id))) {
          const server = await m.findOneByOrFail(Server, { id: row.serverId });
          ipId = (await this.catalog.freeDedicatedIp(m, server, s.hostname)).id;
          io.log(`IP ${row.serverIpId} was taken meanwhile: ${ipId} instead on ${server.hostname}`);
        }
        await this.catalog.attachIps(m, s.id, [{ ...row, serverIpId: ipId }]);
      }
    });
    io.log(`site ${s.id} (${s.names.join(', ')}) back in the catalog`);
    const context = await this.effects.context(p.installId, jobId);
    await this.effects.renderConfig(context, io);
    await this.effects.awaitVhosts(context, io);
    await this.effects.publish(p.installId, io);
  }
}
