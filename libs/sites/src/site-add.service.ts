import { Inject, Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { InstallSite, type AuditActor, type Install } from '@app/catalog';
import { ValidationFailedError, validateDto } from '@app/common';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { AddSiteDto, emptyPlan, type SiteOperationPlanView, type SiteOperationView } from './dto/site-ops.dto.js';
import { SiteCatalog } from './site-catalog.js';
import { namesOf } from './site-effects.js';
import { SitePlans } from './site-plans.js';
import { SITE_ADD } from './site-job-kinds.js';
import { operationView, SiteRequests } from './site-requests.js';
import { siteErrors } from './sites.errors.js';

/**
 * Adds a site to a live install (issue 17, the seed's "Adding a new
 * site"): the names claimed and the IPs allocated as an order's prepare
 * does, in the request's transaction with the saga job (SiteAddJob), which
 * runs the manifest's `add_site` SQL, renders the config files, publishes
 * DNS, rebuilds nginx and probes the site. The API and `site:add` come here.
 */
@Injectable()
export class SiteAddService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly catalog: SiteCatalog,
    private readonly plans: SitePlans,
    private readonly requests: SiteRequests,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
  ) {}

  async add(installId: number, request: unknown, by: AuditActor): Promise<SiteOperationView> {
    const dto = await validateDto(AddSiteDto, request);
    const site = { hostname: dto.hostname, secureHostname: dto.secureHostname && dto.secureHostname !== dto.hostname ? dto.secureHostname : null, relUrl: dto.relUrl ?? '/', secureRelUrl: dto.secureRelUrl ?? dto.relUrl ?? '/' };
    const names = namesOf(site);
    const m = this.dataSource.manager;
    const install = await this.refusals(m, installId, names);
    const plan = await this.plan(m, install, site.hostname, names);
    if (dto.dryRun) return operationView('site.add', installId, null, plan, null);

    const queued = await this.requests.enqueue(SITE_ADD, installId, async (tx) => {
      const locked = await this.refusals(tx, installId, names, { lock: true });
      const row = await tx.save(tx.create(InstallSite, { installId, ...site, sslPemPath: null, sslKeyPath: null }));
      await this.catalog.claim(tx, installId, row.id, names);
      const ips = await this.catalog.chooseIps(tx, locked.license, await this.catalog.dispatchers(tx, installId), site.hostname);
      await this.catalog.attachIps(tx, row.id, ips);
      plan.allocateIps = ips.map(({ serverIpId, ip, kind, server }) => ({ serverIpId, ip, kind, server }));
      return { payload: { installId, siteId: row.id, names, requestedBy: by }, siteId: row.id };
    }, names);
    const siteId = queued.siteId!;
    plan.dns = await this.plans.projectDns(names, plan.allocateIps.map((i) => i.ip));
    await this.requests.record(by, 'site.add', installId, { jobId: queued.jobId, siteId, before: null, after: { siteId, ...site, ips: plan.allocateIps.map((i) => `${i.ip}@${i.server}`) }, plan });
    return operationView('site.add', installId, siteId, plan, queued.jobId);
  }

  /** Every refusal the catalog answers (checked again in the transaction). */
  private async refusals(m: EntityManager, installId: number, names: readonly string[], options: { lock?: boolean } = {}): Promise<Install> {
    const install = await this.catalog.install(m, installId, options);
    if (install.status !== 'live') throw siteErrors.notLive(install, 'get a site');
    if (new Set(names).size !== names.length) throw new ValidationFailedError([{ field: 'secureHostname', problems: ['names the hostname twice'] }]);
    const count = await m.countBy(InstallSite, { installId });
    const max = this.config.orders.maxSites[install.license];
    if (count + 1 > max) throw siteErrors.tooManySites(install, max, count + 1);
    await this.catalog.refuseTaken(m, names, { installId, siteId: null });
    await this.catalog.refuseOpenOperation(m, install);
    const down = (await this.catalog.dispatchers(m, installId)).filter((s) => s.state === 'down');
    if (down.length > 0) throw siteErrors.serverDown(install, down.map((s) => s.hostname));
    return install;
  }

  private async plan(m: EntityManager, install: Install, hostname: string, names: string[]): Promise<SiteOperationPlanView> {
    const dispatchers = await this.catalog.dispatchers(m, install.id);
    const ips = await this.catalog.chooseIps(m, install.license, dispatchers, hostname);
    const plan = emptyPlan();
    plan.reserveNames = names;
    plan.allocateIps = ips.map(({ serverIpId, ip, kind, server }) => ({ serverIpId, ip, kind, server }));
    plan.dns = await this.plans.projectDns(names, ips.map((i) => i.ip));
    plan.vhosts = dispatchers.map((d) => ({ server: d.hostname, change: `server block for ${names.join(' ')} on ${ips.filter((i) => i.serverId === d.id).map((i) => i.ip).join(', ')} added` }));
    plan.sqlTemplates = await this.plans.sqlTemplates(install, 'add_site');
    plan.configFiles = await this.plans.configFiles(install);
    plan.notes = [`probed through ${dispatchers.map((d) => d.hostname).join(', ')}`, `${install.license === 'paid' ? 'a dedicated IP on every dispatcher' : 'the shared IP serving the fewest sites'}, taken when the operation is queued`];
    return plan;
  }
}
