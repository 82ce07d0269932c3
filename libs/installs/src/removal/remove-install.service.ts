import { Inject, Injectable, Optional } from '@nestjs/common';
import { DataSource, In, type EntityManager } from 'typeorm';
import { AuditEvent, AuditEventRepository, Install, InstallBackup, InstallServer, InstallSite, Job, Server, type AuditActor } from '@app/catalog';
import { NotFoundError } from '@app/common';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { SiteDns } from '@app/dns';
import { QueueService } from '@app/queue';
import { checkInstallId, removalErrors as errors } from './removal.errors.js';
import { backupsRootOn, REMOVABLE_STATUSES, type RemovableStatus } from './removal-context.js';
import { INSTALL_REMOVE } from './remove-install.job.js';
import { siteNamesOf } from './remove-install.steps.js';
import { RemovalPlanView, RemovalView } from './dto/removal.dto.js';

export const installResourceKey = (installId: number) => `install:${installId}`;
const OPEN = ['ready', 'blocked', 'running'] as const;

/** The removal's steps as a support person reads them. */
const PLAN_STEPS = [
  'offline: status removing, nginx and php-fpm rebuilt without it (the shop stops serving)',
  'backup: the home\'s own files, the database dump, certificates and catalog rows, kept for the grace period',
  'crons: the cron file on every server',
  'mounts: the startup_mounts rows',
  'ftp: the FTP account',
  'php: the install\'s system user on every server where the engine runs its PHP',
  'copies: the home on every server but the master (only with this install\'s marker)',
  'home: the home on the master (only with this install\'s marker)',
  'database: its database and user (only the ones this install made)',
  'dns: the A/AAAA records of its names (managed zones)',
  'release: its IPs, site names and code group slot',
  'certificates: its certificate files',
  'sweep: every server checked; nothing may be left',
];

/**
 * Removes an install (DELETE /v1/installs/:id, `install:remove`): checks,
 * then marks it `removing` and queues the saga (RemoveInstallJob) in one
 * transaction; a dry run answers the plan and changes nothing.
 */
@Injectable()
export class RemoveInstallService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly queue: QueueService,
    private readonly audit: AuditEventRepository,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
    @Optional() private readonly dns?: SiteDns,
  ) {}

  async remove(installId: number, options: { dryRun?: boolean }, by: AuditActor): Promise<RemovalPlanView> {
    checkInstallId(installId);
    const m = this.dataSource.manager;
    const install = await this.refusals(m, installId);
    const servers = await this.serversOf(m, install);
    const master = servers[0]!;
    if (master.state === 'down') throw errors.serverDown(install, [master.hostname]);
    const names = siteNamesOf(await m.find(InstallSite, { where: { installId } }));
    const plan = (jobId: number | null, dns?: unknown) =>
      Object.assign(new RemovalPlanView(), {
        installId,
        status: install.status,
        servers: servers.map((s) => s.hostname),
        backup: { server: master.hostname, directory: `${backupsRootOn(master)}/install-${installId}-<backup id>`, graceDays: this.config.backupGraceDays },
        steps: PLAN_STEPS,
        names,
        ...(dns === undefined ? {} : { dns }),
        jobId,
        dryRun: jobId === null,
      });
    if (options.dryRun) return plan(null, this.dns ? await this.dns.planUnpublish(names) : undefined);

    const fromStatus = install.status as RemovableStatus;
    const jobId = await this.dataSource.transaction(async (tx) => {
      if (this.dataSource.options.type !== 'better-sqlite3') await tx.findOne(Install, { where: { id: installId }, lock: { mode: 'pessimistic_write' } });
      const now = await this.refusals(tx, installId);
      const marked = await tx.update(Install, { id: installId, status: now.status }, { status: 'removing', statusReason: `removal requested by ${by.actor}` });
      if ((marked.affected ?? 0) === 0) throw errors.notRemovable(now);
      const { job } = await this.queue.enqueue(INSTALL_REMOVE, { installId, fromStatus, actor: by.actor, via: by.via }, { manager: tx, resourceKey: installResourceKey(installId) });
      return job.id;
    });
    this.queue.nudge();
    await this.audit.record({
      ...by,
      action: 'install.remove',
      targetType: 'install',
      targetId: installId,
      details: { jobId, before: { status: fromStatus }, after: { status: 'removing' }, names, servers: servers.map((s) => s.hostname) },
    });
    return plan(jobId);
  }

  /** The install's backups and the last removal's sweep (GET /v1/installs/:id/removal). */
  async view(installId: number): Promise<RemovalView> {
    checkInstallId(installId);
    const install = await this.dataSource.getRepository(Install).findOneBy({ id: installId });
    if (!install) throw new NotFoundError('install', installId);
    const backups = await this.dataSource.getRepository(InstallBackup).find({ where: { installId }, order: { id: 'DESC' } });
    const event = await this.dataSource.getRepository(AuditEvent).findOne({ where: { targetType: 'install', targetId: String(installId), action: 'install.removed' }, order: { id: 'DESC' } });
    return Object.assign(new RemovalView(), {
      installId,
      status: install.status,
      removedAt: install.removedAt ? install.removedAt.toISOString() : null,
      backups: backups.map((b) => {
        const contents = (b.contents ?? {}) as { files?: unknown; home?: unknown; database?: unknown };
        return { id: b.id, state: b.state, serverId: b.serverId, path: b.path, expiresAt: b.expiresAt, sizeBytes: b.sizeBytes === null ? null : Number(b.sizeBytes), files: contents.files ?? [], home: contents.home, database: contents.database, error: b.error };
      }),
      sweep: (event?.details as { sweep?: unknown } | null)?.sweep ?? null,
    });
  }

  /** Every refusal the catalog answers. */
  private async refusals(m: EntityManager, installId: number): Promise<Install> {
    const install = await m.findOneBy(Install, { id: installId });
    if (!install) throw new NotFoundError('install', installId);
    if (!(REMOVABLE_STATUSES as readonly string[]).includes(install.status)) throw errors.notRemovable(install);
    const open = await m.findOne(Job, { where: { resourceKey: installResourceKey(installId), state: In([...OPEN]) }, order: { id: 'ASC' } });
    if (open) throw errors.busy(install, open.id, open.kind);
    return install;
  }

  /** Master first, then the install's other servers. */
  private async serversOf(m: EntityManager, install: Install): Promise<Server[]> {
    const rows = await m.find(InstallServer, { where: { installId: install.id }, order: { id: 'ASC' } });
    const ids = [...new Set([install.masterServerId!, ...rows.map((r) => r.serverId)])];
    const byId = new Map((await m.find(Server, { where: { id: In(ids) } })).map((s) => [s.id, s]));
    return ids.map((id) => byId.get(id)).filter((s): s is Server => s !== undefined);
  }
}
