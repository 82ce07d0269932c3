import { Injectable } from '@nestjs/common';
import { DataSource, In, type EntityManager } from 'typeorm';
import { ServerIp, type AuditActor, type Install, type InstallSite, type Server } from '@app/catalog';
import { NotFoundError, ValidationFailedError, validateDto } from '@app/common';
import { ChangeHostnameDto, emptyPlan, type SiteOperationPlanView, type SiteOperationView } from './dto/site-ops.dto.js';
import { SiteCatalog, type SiteIpRow, type SiteSnapshot } from './site-catalog.js';
import { namesOf } from './site-effects.js';
import { SitePlans } from './site-plans.js';
import { SITE_HOSTNAME } from './site-job-kinds.js';
import type { ChangeHostnamePayload } from './site-payloads.js';
import { operationView, SiteRequests } from './site-requests.js';
import { siteErrors } from './sites.errors.js';

interface Change {
  install: Install;
  site: InstallSite;
  from: SiteSnapshot;
  to: ChangeHostnamePayload['to'];
  added: string[];
  released: string[];
  dispatchers: Server[];
}

/**
 * Changes a site's hostname, secure hostname and optionally its IPs (the
 * seed's "Change install hostname"): the new names are claimed in the
 * request's transaction with the saga job (HostnameChangeJob); the old
 * ones are given up only once the new ones serve. Whether the installed
 * certificate covers the new names is decided here (read from the
 * master): one that does not is dropped, and the plan says so. The API and
 * `site:hostname` come here.
 */
@Injectable()
export class HostnameChangeService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly catalog: SiteCatalog,
    private readonly plans: SitePlans,
    private readonly requests: SiteRequests,
  ) {}

  async change(installId: number, siteId: number, request: unknown, by: AuditActor): Promise<SiteOperationView> {
    const dto = await validateDto(ChangeHostnameDto, request);
    if (dto.hostname === undefined && dto.secureHostname === undefined && dto.ips === undefined) {
      throw new ValidationFailedError([{ field: 'hostname', problems: ['give hostname, secureHostname or ips: nothing to change'] }]);
    }
    const m = this.dataSource.manager;
    const change = await this.refusals(m, installId, siteId, dto);
    const master = change.dispatchers.find((d) => d.id === change.install.masterServerId) ?? change.dispatchers[0]!;
    const newNames = namesOf(change.to);
    const namesChange = change.added.length > 0 || change.released.length > 0;
    const dropCertificate = namesChange && (change.from.sslPemPath !== null || change.from.sslKeyPath !== null) && !(await this.plans.certificateCovers(change.site, master, newNames));
    const plan = await this.plan(m, change, dropCertificate);
    if (dto.dryRun) return operationView('site.hostname', installId, siteId, plan, null);

    const queued = await this.requests.enqueue(SITE_HOSTNAME, installId, async (tx) => {
      const now = await this.refusals(tx, installId, siteId, dto, { lock: true });
      // The new names are the site's from now on; the old ones stay claimed until the new ones serve.
      await this.catalog.claim(tx, installId, siteId, now.added);
      const payload: ChangeHostnamePayload = { installId, siteId, from: now.from, to: now.to, dropCertificate, requestedBy: by };
      return { payload };
    }, change.added);
    await this.requests.record(by, 'site.hostname', installId, {
      jobId: queued.jobId,
      siteId,
      before: { hostname: change.from.hostname, secureHostname: change.from.secureHostname, ips: change.from.ips.map((i) => i.serverIpId), certificate: change.from.sslPemPath },
      after: { hostname: change.to.hostname, secureHostname: change.to.secureHostname, ips: (change.to.ips ?? change.from.ips).map((i) => i.serverIpId), certificate: dropCertificate ? null : change.from.sslPemPath },
      plan,
    });
    return operationView('site.hostname', installId, siteId, plan, queued.jobId);
  }

  private async refusals(m: EntityManager, installId: number, siteId: number, dto: ChangeHostnameDto, options: { lock?: boolean } = {}): Promise<Change> {
    const install = await this.catalog.install(m, installId, options);
    const site = await this.catalog.site(m, install, siteId);
    if (install.status !== 'live') throw siteErrors.notLive(install, 'change a hostname');
    const from = await this.catalog.snapshot(m, site);
    const hostname = dto.hostname ?? site.hostname;
    // A secure hostname equal to the hostname is no name of its own; one not given follows the hostname when it was the same.
    const secure = dto.secureHostname !== undefined ? dto.secureHostname : site.secureHostname === site.hostname ? null : site.secureHostname;
    const to: Change['to'] = { hostname, secureHostname: secure === hostname ? null : secure, ips: null };
    const newNames = namesOf(to);
    const added = newNames.filter((n) => !from.names.includes(n));
    const released = from.names.filter((n) => !newNames.includes(n));
    const dispatchers = await this.catalog.dispatchers(m, installId);
    if (dto.ips !== undefined) to.ips = await this.explicitIps(m, install, site, dispatchers, dto.ips);
    const sameIps = to.ips === null || sameRows(to.ips, from.ips);
    if (added.length === 0 && released.length === 0 && sameIps) throw siteErrors.nothingChanges(site);
    if (sameIps) to.ips = null;
    await this.catalog.refuseTaken(m, added, { installId, siteId });
    await this.catalog.refuseOpenOperation(m, install);
    const down = dispatchers.filter((s) => s.state === 'down');
    if (down.length > 0) throw siteErrors.serverDown(install, down.map((s) => s.hostname));
    return { install, site, from, to, added, released, dispatchers };
  }

  /** Explicit IPs: every one in the pool of a dispatcher of the install, every dispatcher with one, none held by another site. */
  private async explicitIps(m: EntityManager, install: Install, site: InstallSite, dispatchers: Server[], ids: number[]): Promise<SiteIpRow[]> {
    const unique = [...new Set(ids)];
    const ips = await m.find(ServerIp, { where: { id: In(unique) } });
    const unknown = unique.filter((id) => !ips.some((ip) => ip.id === id));
    if (unknown.length > 0) throw new NotFoundError('server IP', unknown.join(', '));
    const foreign = ips.filter((ip) => !dispatchers.some((d) => d.id === ip.serverId));
    if (foreign.length > 0) throw siteErrors.badIps(`${foreign.map((i) => i.ip).join(', ')} belong(s) to no dispatcher of install ${install.id}`, { ips: foreign.map((i) => i.ip) });
    const bare = dispatchers.filter((d) => !ips.some((ip) => ip.serverId === d.id));
    if (bare.length > 0) throw siteErrors.badIps(`every dispatcher of install ${install.id} needs one of the site's IPs: none given on ${bare.map((d) => d.hostname).join(', ')}`, { servers: bare.map((d) => d.hostname) });
    for (const ip of ips) {
      if (ip.kind !== 'shared' && (await this.catalog.heldElsewhere(m, ip.id, site.id))) throw siteErrors.badIps(`${ip.ip} is held by another site`, { ip: ip.ip });
    }
    return ips.map((ip) => ({ serverIpId: ip.id, serverId: ip.serverId, exclusive: ip.kind !== 'shared' }));
  }

  private async plan(m: EntityManager, change: Change, dropCertificate: boolean): Promise<SiteOperationPlanView> {
    const { install, from, to, added, released, dispatchers } = change;
    const plan = emptyPlan();
    const after = to.ips ?? from.ips;
    const afterIps = await this.catalog.describeIps(m, after);
    plan.reserveNames = added;
    plan.releaseNames = released;
    if (to.ips) {
      plan.allocateIps = afterIps.filter((i) => !from.ips.some((f) => f.serverIpId === i.serverIpId));
      plan.releaseIps = await this.catalog.describeIps(m, from.ips.filter((f) => !to.ips!.some((t) => t.serverIpId === f.serverIpId)));
    }
    plan.dns = [...(await this.plans.projectDns(namesOf(to), afterIps.map((i) => i.ip))), ...(await this.plans.planUnpublish(released))];
    plan.vhosts = dispatchers.map((d) => ({
      server: d.hostname,
      change: `server_name ${from.names.join(' ')} -> ${namesOf(to).join(' ')} on ${afterIps.filter((i) => i.server === d.hostname).map((i) => i.ip).join(', ')}${released.length ? ` (the default server answers 404 for ${released.join(', ')})` : ''}`,
    }));
    plan.sqlTemplates = added.length || released.length ? await this.plans.sqlTemplates(install, 'hostname_change') : [];
    plan.configFiles = await this.plans.configFiles(install);
    plan.notes.push(`${released.join(', ') || 'no name'} released only once ${to.hostname} answers through ${dispatchers.map((d) => d.hostname).join(', ')}`);
    if (dropCertificate) {
      plan.notes.push(`the installed certificate (${from.sslPemPath}) does not cover ${namesOf(to).join(', ')}: it is dropped and its files removed; the site serves http until a new certificate is installed`);
    } else if (from.sslPemPath) {
      plan.notes.push(`the installed certificate (${from.sslPemPath}) covers ${namesOf(to).join(', ')}: kept`);
    }
    return plan;
  }
}

function sameRows(a: readonly SiteIpRow[], b: readonly SiteIpRow[]): boolean {
  const ids = (rows: readonly SiteIpRow[]) => rows.map((r) => r.serverIpId).sort((x, y) => x - y).join(',');
  return ids(a) === ids(b);
}
