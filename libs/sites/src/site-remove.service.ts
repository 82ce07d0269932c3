import { Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { InstallSite, type AuditActor, type Install } from '@app/catalog';
import { validateDto } from '@app/common';
import { DryRunDto, emptyPlan, type SiteOperationPlanView, type SiteOperationView } from './dto/site-ops.dto.js';
import { SiteCatalog, type SiteSnapshot } from './site-catalog.js';
import { SitePlans } from './site-plans.js';
import { SITE_REMOVE } from './site-job-kinds.js';
import { operationView, SiteRequests } from './site-requests.js';
import { siteErrors } from './sites.errors.js';

/**
 * Removes a site from a live install (never its last one): queues the
 * saga (SiteRemoveJob) with the site as it is, so a failure puts it back
 * exactly. The API and `site:remove` come here.
 */
@Injectable()
export class SiteRemoveService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly catalog: SiteCatalog,
    private readonly plans: SitePlans,
    private readonly requests: SiteRequests,
  ) {}

  async remove(installId: number, siteId: number, request: unknown, by: AuditActor): Promise<SiteOperationView> {
    const dto = await validateDto(DryRunDto, request ?? {});
    const m = this.dataSource.manager;
    const { install, site } = await this.refusals(m, installId, siteId);
    const snapshot = await this.catalog.snapshot(m, site);
    const plan = await this.plan(m, install, snapshot);
    if (dto.dryRun) return operationView('site.remove', installId, siteId, plan, null);
    const queued = await this.requests.enqueue(SITE_REMOVE, installId, async (tx) => {
      const now = await this.refusals(tx, installId, siteId, { lock: true });
      return { payload: { installId, site: await this.catalog.snapshot(tx, now.site), requestedBy: by } };
    }, []);
    await this.requests.record(by, 'site.remove', installId, { jobId: queued.jobId, siteId, before: queued.payload.site, after: null, plan });
    return operationView('site.remove', installId, siteId, plan, queued.jobId);
  }

  private async refusals(m: EntityManager, installId: number, siteId: number, options: { lock?: boolean } = {}): Promise<{ install: Install; site: InstallSite }> {
    const install = await this.catalog.install(m, installId, options);
    const site = await this.catalog.site(m, install, siteId);
    if (install.status !== 'live') throw siteErrors.notLive(install, 'lose a site');
    if ((await m.countBy(InstallSite, { installId })) <= 1) throw siteErrors.lastSite(install, site);
    await this.catalog.refuseOpenOperation(m, install);
    const down = (await this.catalog.dispatchers(m, installId)).filter((s) => s.state === 'down');
    if (down.length > 0) throw siteErrors.serverDown(install, down.map((s) => s.hostname));
    return { install, site };
  }

  private async plan(m: EntityManager, install: Install, site: SiteSnapshot): Promise<SiteOperationPlanView> {
    const plan = emptyPlan();
    const dispatchers = await this.catalog.dispatchers(m, install.id);
    plan.releaseNames = site.names;
    plan.releaseIps = await this.catalog.describeIps(m, site.ips);
    plan.dns = await this.plans.planUnpublish(site.names);
    plan.vhosts = dispatchers.map((d) => ({ server: d.hostname, change: `server blocks for ${site.names.join(' ')} removed (the default server answers 404 for them)` }));
    plan.configFiles = await this.plans.configFiles(install);
    if (site.sslPemPath || site.sslKeyPath) plan.notes.push(`certificate files removed from ${dispatchers.map((d) => d.hostname).join(', ')}: ${[site.sslPemPath, site.sslKeyPath].filter(Boolean).join(', ')}`);
    return plan;
  }
}
