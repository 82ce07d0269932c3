import { Injectable } from '@nestjs/common';
import { DataSource, In } from 'typeorm';
import { AuditEvent, AuditEventRepository, Install, Job, type AuditActor } from '@app/catalog';
import { NotFoundError } from '@app/common';
import { defineJobKind, JobHandler, QueueService, type JobContext } from '@app/queue';
import { InstallBuildSteps } from '../build-saga/build-steps.js';
import { FtpPermissions, type FtpResetReport } from './ftp-permissions.js';
import { checkInstallId, removalErrors as errors } from './removal.errors.js';
import { FtpResetView } from './dto/removal.dto.js';

export interface FtpResetPayload {
  installId: number;
  actor: string;
  via: string;
}

/** An install's FTP permissions reset (resource key `install:<id>`: never beside another operation on it). */
export const INSTALL_FTP_RESET = defineJobKind<FtpResetPayload>('install.ftp-reset', { maxAttempts: 3, backoff: { baseMs: 2_000, maxMs: 20_000 } });

/** Said with every reset: the bind mounts are the BindMounts task's. */
export const MOUNTS_NOTE = 'the FTP tree was re-applied as the build\'s ftp step makes it (its root, the targets its bind mounts land in, the startup_mounts rows, the account if missing); the BindMounts task mounts what is missing within a minute';

const ENDED = ['done', 'dead', 'cancelled'];

/**
 * Reset FTP permissions (POST /v1/installs/:id/ftp/reset,
 * `install:ftp-reset`): the seed's "chown ftp:ftp on the dir in question",
 * for the whole FTP tree and the writable directories, as the manifest
 * says. A dry run lists what would change; the reset itself is a job on the
 * install's resource key (never beside a removal or a build), waited for.
 */
@Injectable()
export class FtpResetService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly queue: QueueService,
    private readonly audit: AuditEventRepository,
  ) {}

  async reset(installId: number, options: { dryRun?: boolean; waitMs?: number }, by: AuditActor, plan?: (installId: number) => Promise<FtpResetReport>): Promise<FtpResetView> {
    checkInstallId(installId);
    const install = await this.dataSource.getRepository(Install).findOneBy({ id: installId });
    if (!install) throw new NotFoundError('install', installId);
    if (install.status !== 'live') throw errors.notLive(install);
    const view = (report: FtpResetReport | null, jobId: number | null, state: string) =>
      Object.assign(new FtpResetView(), { installId, server: report?.server ?? '', changes: report?.changes ?? [], checked: report?.checked ?? 0, mounts: MOUNTS_NOTE, jobId, dryRun: options.dryRun ?? false, state });
    if (options.dryRun) {
      if (!plan) throw new Error('a dry run needs the planner (an engine or the CLI with the installs module)');
      return view(await plan(installId), null, 'planned');
    }
    const open = await this.dataSource.getRepository(Job).findOne({ where: { resourceKey: `install:${installId}`, state: In(['ready', 'blocked', 'running']), kind: In(['install.remove', 'install.restore', 'install.build']) } });
    if (open) throw errors.busy(install, open.id, open.kind);
    const { job } = await this.queue.enqueue(INSTALL_FTP_RESET, { installId, actor: by.actor, via: by.via }, { resourceKey: `install:${installId}` });
    await this.audit.record({ ...by, action: 'install.ftp.reset-requested', targetType: 'install', targetId: installId, details: { jobId: job.id } });
    const deadline = Date.now() + (options.waitMs ?? 0);
    for (;;) {
      const now = await this.dataSource.getRepository(Job).findOneByOrFail({ id: job.id });
      if (ENDED.includes(now.state)) {
        const event = await this.result(job.id);
        if (now.state !== 'done' || !event) return view(null, job.id, `${now.state}: ${now.lastError ?? ''}`);
        return view(event, job.id, 'done');
      }
      if (Date.now() > deadline) return view(null, job.id, 'queued');
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  /** What the reset job changed (its audit event). */
  async result(jobId: number): Promise<FtpResetReport | null> {
    const events = await this.dataSource.getRepository(AuditEvent).find({ where: { action: 'install.ftp.reset' }, order: { id: 'DESC' }, take: 50 });
    const event = events.find((e) => (e.details as { jobId?: number } | null)?.jobId === jobId);
    return (event?.details as { report?: FtpResetReport } | undefined)?.report ?? null;
  }
}

/** The job: the reset on the install's master, its report in the audit event (before -> after of each path). */
@Injectable()
export class FtpResetJob {
  constructor(
    private readonly builds: InstallBuildSteps,
    private readonly permissions: FtpPermissions,
    private readonly audit: AuditEventRepository,
  ) {}

  @JobHandler(INSTALL_FTP_RESET)
  async run(payload: FtpResetPayload, job: JobContext): Promise<void> {
    const context = await this.builds.loadContext(payload.installId, job.jobId);
    if (context.install.status !== 'live') throw Object.assign(new Error(`install ${payload.installId} is ${context.install.status}, not live`), { permanent: true });
    // What is wrong, as found; then the FTP tree as the build's ftp step makes it (directories, startup_mounts rows, the account if missing), then owners and modes.
    const { report } = await this.permissions.plan(context);
    await this.builds.ftp().execute(context, { log: (line) => job.log(line), signal: job.signal });
    await this.permissions.reset(context);
    for (const c of report.changes) job.log(`${c.path}: ${c.before} -> ${c.after}`);
    job.log(`${report.changes.length + report.more} change(s), ${report.checked} path(s) checked on ${report.server}; ${MOUNTS_NOTE}`);
    await this.audit.record({
      actor: payload.actor,
      via: 'worker',
      action: 'install.ftp.reset',
      targetType: 'install',
      targetId: payload.installId,
      details: { jobId: job.jobId, report, before: report.changes.map((c) => ({ path: c.path, is: c.before })), after: report.changes.map((c) => ({ path: c.path, is: c.after })), mounts: MOUNTS_NOTE },
    });
  }
}

/** The dry run's planner, where the build steps are (engines). */
@Injectable()
export class FtpResetPlanner {
  constructor(
    private readonly builds: InstallBuildSteps,
    private readonly permissions: FtpPermissions,
  ) {}

  async plan(installId: number): Promise<FtpResetReport> {
    return (await this.permissions.plan(await this.builds.loadContext(installId))).report;
  }
}
