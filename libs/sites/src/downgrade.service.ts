import { Inject, Injectable } from '@nestjs/common';
import { DataSource, In, Not, type EntityManager } from 'typeorm';
import { CodeUpdate, FtpAccount, InstallServer, InstallSite, InstallSiteIp, Server, SharedCodeGroup, StartupMount, type AuditActor, type Install } from '@app/catalog';
import { validateDto } from '@app/common';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { HomeServers } from '@app/codebase-update';
import { matchPinRule } from '@app/installs';
import { DryRunDto, emptyPlan, type SiteOperationPlanView, type SiteOperationView } from './dto/site-ops.dto.js';
import { SiteCatalog } from './site-catalog.js';
import { namesOf } from './site-effects.js';
import { SitePlans } from './site-plans.js';
import { INSTALL_DOWNGRADE } from './site-job-kinds.js';
import type { DowngradePayload } from './site-payloads.js';
import { operationView, SiteRequests } from './site-requests.js';
import { siteErrors } from './sites.errors.js';

interface Downgrade {
  install: Install;
  master: Server;
  others: Server[];
  from: SharedCodeGroup;
  to: SharedCodeGroup;
  revision: string;
  payload: Omit<DowngradePayload, 'requestedBy'>;
}

/**
 * Makes a paid install free (the seed's "Downgrade paid to free", seven
 * steps as one saga: DowngradeJob). Here: everything a support person is
 * told about before anything changes, the free code group chosen (a pin
 * rule's group of the customer first, then the free group of the same
 * revision with the fewest installs, with room, its release on the
 * master; none: 409 with the revision), and what goes recorded in the
 * job's payload (the servers, IPs, FTP state and mounts), so a failure
 * puts back exactly what was. The API and `install:downgrade` come here.
 */
@Injectable()
export class DowngradeService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly catalog: SiteCatalog,
    private readonly plans: SitePlans,
    private readonly requests: SiteRequests,
    private readonly homes: HomeServers,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
  ) {}

  async downgrade(installId: number, request: unknown, by: AuditActor): Promise<SiteOperationView> {
    const dto = await validateDto(DryRunDto, request ?? {});
    const m = this.dataSource.manager;
    const d = await this.refusals(m, installId);
    const plan = await this.plan(m, d);
    if (dto.dryRun) return operationView('install.downgrade', installId, null, plan, null);
    const queued = await this.requests.enqueue(INSTALL_DOWNGRADE, installId, async (tx) => {
      const now = await this.refusals(tx, installId, { lock: true, group: d.to });
      return { payload: { ...now.payload, requestedBy: by } };
    }, []);
    await this.requests.record(by, 'install.downgrade', installId, {
      jobId: queued.jobId,
      before: { license: 'paid', groupId: d.from.id, servers: [d.master, ...d.others].map((s) => s.hostname), ips: plan.releaseIps.length + (await this.keptIps(m, installId, d.master.id)), ftpEnabled: d.payload.ftpEnabled, mounts: d.payload.mounts.length },
      after: { license: 'free', groupId: d.to.id, servers: [d.master.hostname], ips: await this.keptIps(m, installId, d.master.id), ftpEnabled: d.payload.ftpEnabled === null ? null : false, mounts: 0 },
      plan,
    });
    return operationView('install.downgrade', installId, null, plan, queued.jobId);
  }

  private async refusals(m: EntityManager, installId: number, options: { lock?: boolean; group?: SharedCodeGroup } = {}): Promise<Downgrade> {
    const install = await this.catalog.install(m, installId, options);
    if (install.status !== 'live') throw siteErrors.notLive(install, 'be downgraded');
    if (install.license !== 'paid') throw siteErrors.notPaid(install);
    const sites = await m.find(InstallSite, { where: { installId }, order: { id: 'ASC' } });
    const max = this.config.orders.maxSites.free;
    if (sites.length > max) throw siteErrors.tooManySites({ ...install, license: 'free' } as Install, max, sites.length);
    const rows = await m.find(InstallServer, { where: { installId }, order: { id: 'ASC' } });
    const servers = rows.length ? await m.find(Server, { where: { id: In(rows.map((r) => r.serverId)) } }) : [];
    const clouds = rows.filter((r) => r.role === 'cloud');
    if (clouds.length > 0) throw siteErrors.hasCloudHandlers(install, clouds.map((r) => servers.find((s) => s.id === r.serverId)?.hostname ?? String(r.serverId)));
    await this.catalog.refuseOpenOperation(m, install);
    const master = servers.find((s) => s.id === install.masterServerId)!;
    const down = servers.filter((s) => s.state === 'down');
    if (down.length > 0) throw siteErrors.serverDown(install, down.map((s) => s.hostname));
    const from = await m.findOneByOrFail(SharedCodeGroup, { id: install.sharedCodeGroupId! });
    const revision = install.codeRevision ?? from.revision!;
    const to = await this.freeGroup(m, install, revision, master, options.group);
    if (!to) throw siteErrors.noFreeGroup(install, revision);
    const others = servers.filter((s) => s.id !== master.id);
    const siteIps = await this.catalog.ipRows(m, sites.map((s) => s.id));
    // One IP per site kept on the master (its first); every other one given back.
    const kept = new Set(sites.map((s) => siteIps.find((r) => r.installSiteId === s.id && r.serverId === master.id)?.id).filter((id): id is number => id !== undefined));
    const unserved = sites.filter((s) => !siteIps.some((r) => r.installSiteId === s.id && r.serverId === master.id));
    if (unserved.length > 0) throw siteErrors.badIps(`${unserved.map((s) => s.hostname).join(', ')} has no IP on the master ${master.hostname}: give it one first (PATCH its site with ips)`, { sites: unserved.map((s) => s.id) });
    const ftp = await m.findOneBy(FtpAccount, { installId });
    const mounts = await m.find(StartupMount, { where: { installId }, order: { id: 'ASC' } });
    return {
      install, master, others, from, to, revision,
      payload: {
        installId,
        fromGroupId: from.id,
        toGroupId: to.id,
        replicas: rows.filter((r) => r.serverId !== master.id).map((r) => ({ serverId: r.serverId, role: r.role, weight: r.weight, poolPort: r.poolPort, state: r.state })),
        releasedIps: siteIps.filter((r) => !kept.has(r.id)).map((r) => ({ installSiteId: r.installSiteId, serverIpId: r.serverIpId, serverId: r.serverId, exclusive: r.exclusiveIpId !== null })),
        ftpEnabled: ftp ? ftp.enabled : null,
        mounts: mounts.map((mt) => ({ serverId: mt.serverId, source: mt.source, target: mt.target })),
      },
    };
  }

  /**
   * The free group the install moves to: its customer's pinned group when
   * a pin rule names one that fits, else a free, unpinned group of the
   * same revision, ready, unlocked, with room, no rollout running, its
   * release on the master; the fewest installs first. `chosen`: the one
   * the request's first look chose, kept when it still fits.
   */
  private async freeGroup(m: EntityManager, install: Install, revision: string, master: Server, chosen?: SharedCodeGroup): Promise<SharedCodeGroup | null> {
    const fits = async (g: SharedCodeGroup | null): Promise<boolean> => {
      if (!g || g.tier !== 'free' || g.state !== 'ready' || g.locked || g.revision !== revision || !g.manifest || g.installCount >= g.installLimit) return false;
      if (await m.findOne(CodeUpdate, { where: { groupId: g.id, kind: In(['rollout', 'rollback']), state: In(['planned', 'running']) } })) return false;
      return (await this.homes.missingRelease([master], g, revision)).length === 0;
    };
    if (chosen) {
      const now = await m.findOneBy(SharedCodeGroup, { id: chosen.id });
      if (await fits(now)) return now;
    }
    const pin = await matchPinRule(m, install.customerEmail, install.orderAttributes ?? {});
    if (pin?.codeGroupId) {
      const pinned = await m.findOneBy(SharedCodeGroup, { id: pin.codeGroupId });
      if (await fits(pinned)) return pinned;
    }
    const candidates = await m.find(SharedCodeGroup, { where: { tier: 'free', pinned: false, locked: false, state: 'ready', revision, id: Not(install.sharedCodeGroupId!) }, order: { installCount: 'ASC', id: 'ASC' } });
    for (const group of candidates) if (await fits(group)) return group;
    return null;
  }

  private async keptIps(m: EntityManager, installId: number, masterId: number): Promise<number> {
    const sites = await m.find(InstallSite, { where: { installId } });
    return sites.length ? m.countBy(InstallSiteIp, { installSiteId: In(sites.map((s) => s.id)), serverId: masterId }) : 0;
  }

  private async plan(m: EntityManager, d: Downgrade): Promise<SiteOperationPlanView> {
    const plan = emptyPlan();
    const { install, master, others, from, to, revision, payload } = d;
    plan.releaseIps = await this.catalog.describeIps(m, payload.releasedIps);
    const sites = await m.find(InstallSite, { where: { installId: install.id }, order: { id: 'ASC' } });
    const siteIps = await this.catalog.ipRows(m, sites.map((s) => s.id));
    const keptBySite = new Map(sites.map((s) => [s.id, siteIps.filter((r) => r.installSiteId === s.id && !payload.releasedIps.some((x) => x.serverIpId === r.serverIpId && x.installSiteId === s.id)).map((r) => r.ip)]));
    for (const site of sites) plan.dns.push(...(await this.plans.projectDns(namesOf(site), keptBySite.get(site.id) ?? [])));
    plan.vhosts = [
      { server: master.hostname, change: `server blocks on ${[...new Set([...keptBySite.values()].flat())].join(', ')} only` },
      ...others.filter((s) => s.roles.includes('dispatcher')).map((s) => ({ server: s.hostname, change: `vhost of ${install.fsName} removed` })),
    ];
    plan.configFiles = await this.plans.configFiles(install);
    plan.notes = [
      `code group ${from.name} -> ${to.name} (free, revision ${revision.slice(0, 12)}): links re-pointed on ${master.hostname}`,
      'license paid -> free',
      payload.ftpEnabled === null ? 'no FTP account' : 'FTP access disabled (the account is kept, never renamed)',
      `${payload.mounts.length} bind mount(s) removed`,
      others.length ? `the copies on ${others.map((s) => s.hostname).join(', ')} removed (only a home this install made), with their crons and PHP accounts` : 'no copy on another server',
      `DNS: every name to the master ${master.hostname} only`,
    ];
    return plan;
  }
}
