import { Injectable } from '@nestjs/common';
import { DataSource, In, type EntityManager } from 'typeorm';
import { AuditEventRepository, Install, InstallBackup, InstallServer, InstallSite, InstallSiteIp, Job, ServerIp, SharedCodeGroup, SiteName, type AuditActor } from '@app/catalog';
import { DomainError, NotFoundError } from '@app/common';
import { QueueService } from '@app/queue';
import type { BackupContents } from './install-backups.service.js';
import { checkInstallId, removalErrors as errors } from './removal.errors.js';
import { installResourceKey } from './remove-install.service.js';
import { INSTALL_RESTORE } from './restore-install.job.js';
import { RestoreView } from './dto/removal.dto.js';

const OPEN = ['ready', 'blocked', 'running'] as const;

/** A site's IP on a server, as the restore takes it again. */
interface IpChoice {
  installSiteId: number;
  serverId: number;
  serverIpId: number;
  exclusive: boolean;
}

/**
 * Brings a removed install back from its kept backup (POST
 * /v1/installs/:id/restore, `install:restore`): in one transaction its
 * names re-claimed (409 if one was taken meanwhile), IPs allocated again
 * (the same ones when still free), its code group slot taken, status
 * `building`; then the restore saga (RestoreInstallJob) puts files,
 * database and certificates back and the build's own steps make it live.
 */
@Injectable()
export class RestoreInstallService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly queue: QueueService,
    private readonly audit: AuditEventRepository,
  ) {}

  async restore(installId: number, options: { dryRun?: boolean }, by: AuditActor): Promise<RestoreView> {
    checkInstallId(installId);
    const { install, backup, names } = await this.refusals(this.dataSource.manager, installId);
    if (options.dryRun) {
      await this.dataSource.transaction(async (m) => {
        // The same checks as the real one (IPs, group), in a transaction rolled back.
        await this.claim(m, install, backup, names);
        throw new DryRunDone();
      }).catch((e: unknown) => {
        if (!(e instanceof DryRunDone)) throw e;
      });
      return Object.assign(new RestoreView(), { installId, backupId: backup.id, names, jobId: null, dryRun: true });
    }
    const jobId = await this.dataSource.transaction(async (m) => {
      if (this.dataSource.options.type !== 'better-sqlite3') await m.findOne(Install, { where: { id: installId }, lock: { mode: 'pessimistic_write' } });
      const again = await this.refusals(m, installId);
      await this.claim(m, again.install, again.backup, again.names);
      const { job } = await this.queue.enqueue(INSTALL_RESTORE, { installId, backupId: backup.id, actor: by.actor, via: by.via }, { manager: m, resourceKey: installResourceKey(installId) });
      return job.id;
    }).catch((error: unknown) => {
      // The names' unique index settles a race with an order for one of them.
      if (!(error instanceof DomainError) && /site_names|uq_site_names_name|UNIQUE.*site_names/i.test(String((error as Error)?.message))) throw errors.hostnameTaken(names);
      throw error;
    });
    this.queue.nudge();
    await this.audit.record({ ...by, action: 'install.restore', targetType: 'install', targetId: installId, details: { jobId, backupId: backup.id, before: { status: 'removed' }, after: { status: 'building' }, names } });
    return Object.assign(new RestoreView(), { installId, backupId: backup.id, names, jobId, dryRun: false });
  }

  private async refusals(m: EntityManager, installId: number): Promise<{ install: Install; backup: InstallBackup; names: string[] }> {
    const install = await m.findOneBy(Install, { id: installId });
    if (!install) throw new NotFoundError('install', installId);
    if (install.status !== 'removed') throw errors.notRemoved(install);
    const open = await m.findOne(Job, { where: { resourceKey: installResourceKey(installId), state: In([...OPEN]) } });
    if (open) throw errors.busy(install, open.id, open.kind);
    const backup = await m.findOne(InstallBackup, { where: { installId, state: 'kept' }, order: { id: 'DESC' } });
    const contents = backup?.contents as BackupContents | undefined;
    if (!backup || !contents?.catalog) throw errors.noBackup(install);
    const sites = await m.find(InstallSite, { where: { installId } });
    const names = [...new Set(sites.flatMap((s) => [s.hostname, ...(s.secureHostname ? [s.secureHostname] : [])]))];
    const taken = names.length ? await m.find(SiteName, { where: { name: In(names) } }) : [];
    if (taken.length > 0) throw errors.hostnameTaken(taken.map((t) => t.name));
    return { install, backup, names };
  }

  /** Names, IPs and slot taken again, the install `building`: all or nothing (the caller's transaction). */
  private async claim(m: EntityManager, install: Install, backup: InstallBackup, names: string[]): Promise<void> {
    const contents = backup.contents as unknown as BackupContents;
    const sites = await m.find(InstallSite, { where: { installId: install.id }, order: { id: 'ASC' } });
    const rows = await m.find(InstallServer, { where: { installId: install.id, role: In(['master', 'replica']) } });
    const ips = await this.chooseIps(m, install, sites, rows.map((r) => r.serverId), contents);
    if (install.sharedCodeGroupId === null) throw errors.groupUnavailable(install, null, 'it has none');
    const took = await m
      .createQueryBuilder()
      .update(SharedCodeGroup)
      .set({ installCount: () => 'install_count + 1' })
      .where('id = :id AND install_count < install_limit AND state = :ready', { id: install.sharedCodeGroupId, ready: 'ready' })
      .execute();
    if ((took.affected ?? 0) === 0) {
      const group = await m.findOneBy(SharedCodeGroup, { id: install.sharedCodeGroupId });
      throw errors.groupUnavailable(install, install.sharedCodeGroupId, group ? (group.state !== 'ready' ? `it is ${group.state}` : `it is full (${group.installCount} of ${group.installLimit})`) : 'it is gone');
    }
    for (const site of sites) {
      for (const name of new Set([site.hostname, ...(site.secureHostname ? [site.secureHostname] : [])])) {
        if (names.includes(name)) await m.insert(SiteName, { installId: install.id, installSiteId: site.id, name });
      }
    }
    for (const ip of ips) await m.insert(InstallSiteIp, { installSiteId: ip.installSiteId, serverIpId: ip.serverIpId, serverId: ip.serverId, exclusiveIpId: ip.exclusive ? ip.serverIpId : null });
    const marked = await m.update(Install, { id: install.id, status: 'removed' }, { status: 'building', removedAt: null, statusReason: `restoring from backup ${backup.id}` });
    if ((marked.affected ?? 0) === 0) throw errors.notRemoved(install);
  }

  /** Per site and server: the IP it had when still free, else a free one of the same kind (dedicated for paid, shared for free). */
  private async chooseIps(m: EntityManager, install: Install, sites: InstallSite[], serverIds: number[], contents: BackupContents): Promise<IpChoice[]> {
    const out: IpChoice[] = [];
    const kind = install.license === 'paid' ? 'dedicated' : 'shared';
    for (const site of sites) {
      for (const serverId of serverIds) {
        const before = contents.catalog.siteIps.find((r) => r.installSiteId === site.id && r.serverId === serverId);
        if (before && (await this.free(m, before.serverIpId, before.exclusive, out))) {
          out.push({ installSiteId: site.id, serverId, serverIpId: before.serverIpId, exclusive: before.exclusive });
          continue;
        }
        const candidates = await m.find(ServerIp, { where: { serverId, kind }, order: { id: 'ASC' } });
        let chosen: ServerIp | undefined;
        for (const ip of candidates) if (await this.free(m, ip.id, kind !== 'shared', out)) { chosen = ip; break; }
        if (!chosen) throw new DomainError('IP_POOL_EXHAUSTED', `No free ${kind} IP left on server ${serverId} for ${site.hostname}: add IPs to the pool`, 409, { serverId, kind });
        out.push({ installSiteId: site.id, serverId, serverIpId: chosen.id, exclusive: kind !== 'shared' });
      }
    }
    return out;
  }

  private async free(m: EntityManager, serverIpId: number, exclusive: boolean, chosen: IpChoice[]): Promise<boolean> {
    if (!(await m.findOneBy(ServerIp, { id: serverIpId }))) return false;
    if (!exclusive) return true;
    if (chosen.some((c) => c.serverIpId === serverIpId)) return false;
    return (await m.count(InstallSiteIp, { where: [{ exclusiveIpId: serverIpId }, { serverIpId }] })) === 0;
  }
}

class DryRunDone extends Error {}
