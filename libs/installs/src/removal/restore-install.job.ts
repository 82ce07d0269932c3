import { posix } from 'node:path';
import { Injectable, Optional } from '@nestjs/common';
import { DataSource, In } from 'typeorm';
import { AuditEventRepository, Install, InstallBackup, InstallSite, Server } from '@app/catalog';
import { CODE_LINK } from '@app/codebases';
import { SiteDns } from '@app/dns';
import { checkServerPath, ServerAccess } from '@app/hosts';
import { defineJobKind, JobHandler, type JobContext } from '@app/queue';
import { SagaRunner, type SagaDefinition, type SagaStep, type StepIO } from '@app/saga';
import { checkoutOn, homeOn, type BuildContext } from '../build-saga/build-context.js';
import { HOME_MARKER, homeMarker, InstallBuildSteps } from '../build-saga/build-steps.js';
import { DATABASE_DUMP, HOME_ARCHIVE, isInside, type BackupContents } from './install-backups.service.js';
import { backupsRootOn } from './removal-context.js';
import { RemovalServing, RemoveInstallSteps } from './remove-install.steps.js';
import { TenantDumps } from './tenant-dumps.js';

export interface RestoreInstallPayload {
  installId: number;
  backupId: number;
  actor: string;
  via: string;
}

/** A removed install brought back from its backup (resource key `install:<id>`). */
export const INSTALL_RESTORE = defineJobKind<RestoreInstallPayload>('install.restore', { maxAttempts: 8, backoff: { baseMs: 2_000, maxMs: 60_000 } });
export const INSTALL_RESTORE_SAGA = 'install-restore';

export interface RestoreContext {
  build: BuildContext;
  backup: InstallBackup;
  contents: BackupContents;
  /** Where the backup's files are. */
  backupServer: Server;
  payload: RestoreInstallPayload;
}

const permanent = (message: string) => Object.assign(new Error(message), { permanent: true });

/** What only a restore does, around the build's own steps. */
@Injectable()
export class RestoreInstallSteps {
  constructor(
    private readonly dataSource: DataSource,
    private readonly access: ServerAccess,
    private readonly builds: InstallBuildSteps,
    private readonly dumps: TenantDumps,
    @Optional() private readonly dns?: SiteDns,
  ) {}

  async load(payload: RestoreInstallPayload, jobId: number | null): Promise<RestoreContext> {
    const build = await this.builds.loadContext(payload.installId, jobId);
    const backup = await this.dataSource.getRepository(InstallBackup).findOneByOrFail({ id: payload.backupId });
    const backupServer = await this.dataSource.getRepository(Server).findOneByOrFail({ id: backup.serverId });
    return { build, backup, contents: backup.contents as unknown as BackupContents, backupServer, payload };
  }

  /** Done: the install live, its backup `restored`. */
  async markLive(c: RestoreContext): Promise<void> {
    await this.dataSource.getRepository(Install).update({ id: c.build.install.id }, { status: 'live', statusReason: null });
    await this.dataSource.getRepository(InstallBackup).update({ id: c.backup.id, state: 'kept' }, { state: 'restored' });
  }

  /**
   * The home from its archive: extracted beside (in the backups' root) and
   * renamed into place, so a killed run never leaves half a home where the
   * home goes. A home there already is this install's (an earlier run) or a
   * conflict. A backup without a home gets a new one (the build's step).
   */
  async restoreHome(c: RestoreContext, io: StepIO): Promise<void> {
    const { install, master } = c.build;
    if (!('entries' in c.contents.home)) {
      await this.builds.home().execute(c.build, io);
      await this.builds.tree().execute(c.build, io);
      return;
    }
    if (c.backupServer.id !== master.id) throw permanent(`the backup is on ${c.backupServer.hostname}, the install's master is ${master.hostname}: move it first`);
    const executor = this.access.executorFor(master);
    const home = homeOn(master, install);
    if (await executor.exists(master, home)) {
      const marker = posix.join(home, HOME_MARKER);
      if ((await executor.exists(master, marker)) && (await executor.readFile(master, marker)).toString('utf8') === homeMarker(install)) {
        io.log(`home ${home} restored by an earlier run`);
        return;
      }
      throw permanent(`${home} exists on ${master.hostname} and was not made by this install: left as it is, nothing restored over it`);
    }
    const staging = posix.join(backupsRootOn(master), `restore-${install.id}-${c.backup.id}`);
    await executor.remove(master, staging);
    await executor.mkdirs(master, [staging], { mode: 0o700 });
    const archive = checkServerPath(master, posix.join(c.backup.path, HOME_ARCHIVE));
    await executor.mustRun(master, ['tar', '--extract', '--gzip', '--same-permissions', '--numeric-owner', '--file', archive, '--directory', staging], { timeoutMs: 30 * 60_000 });
    await executor.mustRun(master, ['mv', '--no-target-directory', '--', posix.join(staging, install.fsName), checkServerPath(master, home, { allowRoot: false })]);
    await executor.remove(master, staging);
    io.log(`home ${home} restored on ${master.hostname} (${c.contents.home.entries} entries)`);
  }

  /** Its links as the manifest has them now (the archive kept them; a release moved since is followed), missing copies added. */
  async relink(c: RestoreContext, io: StepIO): Promise<void> {
    const { install, master, group, revision, manifest } = c.build;
    const home = homeOn(master, install);
    await this.access.executorFor(master).symlinkMany(master, [{ path: posix.join(home, CODE_LINK), target: posix.relative(home, checkoutOn(master, group, revision)) }]);
    const plan = await this.builds.applyTree(c.build, manifest, { copies: 'missing' });
    io.log(`tree: ${plan.links.length} links, ${plan.writable.length} writable`);
  }

  /** The dump into the new database (its tables dropped and made again by the dump: a re-run loads it whole again); a backup without a dump runs the build's SQL updates. */
  async restoreDatabase(c: RestoreContext, io: StepIO): Promise<void> {
    if (!('name' in c.contents.database)) {
      await this.builds.sqlUpdates().execute(c.build, io);
      return;
    }
    await this.dumps.load({ server: c.backupServer, path: posix.join(c.backup.path, DATABASE_DUMP) }, c.build.dbServer, c.build.install.dbName);
    io.log(`database ${c.build.install.dbName} loaded from backup ${c.backup.id}`);
  }

  /** Each site's certificate back where it was on the servers that held it (0600), and the sites naming it again. */
  async restoreCertificates(c: RestoreContext, io: StepIO): Promise<void> {
    const from = this.access.executorFor(c.backupServer);
    const servers = await this.dataSource.getRepository(Server).find({ where: { id: In([c.build.master.id, ...c.build.replicas.map((s) => s.id)]) } });
    for (const cert of c.contents.certificates) {
      const pem = await from.readFile(c.backupServer, posix.join(c.backup.path, cert.pemFile));
      const key = await from.readFile(c.backupServer, posix.join(c.backup.path, cert.keyFile));
      for (const server of servers.filter((s) => cert.servers.includes(s.id) && isInside(s.certsRoot, cert.pem) && isInside(s.certsRoot, cert.key))) {
        const executor = this.access.executorFor(server);
        await executor.mkdirs(server, [posix.dirname(cert.pem), posix.dirname(cert.key)]);
        await executor.writeFile(server, cert.pem, pem, { mode: 0o600 });
        await executor.writeFile(server, cert.key, key, { mode: 0o600 });
      }
      const site = c.contents.catalog.sites.find((s) => s.id === cert.siteId);
      await this.dataSource.getRepository(InstallSite).update({ id: cert.siteId }, { sslPemPath: cert.pem, sslKeyPath: cert.key, certSha256: site?.certSha256 ?? null, certNotAfter: site?.certNotAfter ? new Date(site.certNotAfter) : null });
      io.log(`certificate of site ${cert.siteId} back at ${cert.pem}`);
    }
  }

  async dropCertificates(c: RestoreContext, io: StepIO): Promise<void> {
    for (const cert of c.contents.certificates) {
      await this.dataSource.getRepository(InstallSite).update({ id: cert.siteId }, { sslPemPath: null, sslKeyPath: null });
      for (const server of [c.build.master, ...c.build.replicas].filter((s) => cert.servers.includes(s.id) && isInside(s.certsRoot, cert.pem))) {
        for (const path of [cert.pem, cert.key]) await this.access.executorFor(server).remove(server, path);
      }
      io.log(`certificate of site ${cert.siteId} removed again`);
    }
  }

  /** Its names' records again, at the IPs it has now (managed zones; the others are the customer's, said so). */
  async publish(c: RestoreContext, io: StepIO): Promise<void> {
    if (!this.dns) return;
    for (const change of await this.dns.publish(c.build.install.id, io)) {
      if (change.managed) io.log(`dns ${change.name}: ${change.after.map((r) => r.content).join(', ')}`);
    }
  }

  async unpublish(c: RestoreContext, io: StepIO): Promise<void> {
    if (!this.dns) return;
    await this.dns.unpublish([...new Set(c.build.sites.flatMap((s) => [s.hostname, ...(s.secureHostname ? [s.secureHostname] : [])]))], io);
  }
}

/**
 * The restore saga: the build's own steps (system user, config files,
 * database and user, sync to the other servers, crons, FTP, pools, vhosts,
 * probe) around what only a restore does: the home extracted from its
 * archive (never over a directory this install did not make), the dump
 * loaded into the new database, the certificates written back. A failure
 * undoes it all and the install is `removed` again, its backup still kept.
 */
@Injectable()
export class RestoreInstallJob {
  constructor(
    private readonly builds: InstallBuildSteps,
    private readonly removal: RemoveInstallSteps,
    private readonly serving: RemovalServing,
    private readonly restore: RestoreInstallSteps,
    private readonly sagas: SagaRunner,
    private readonly audit: AuditEventRepository,
  ) {}

  @JobHandler(INSTALL_RESTORE)
  async run(payload: RestoreInstallPayload, job: JobContext): Promise<void> {
    await this.sagas.run(this.definition(job.jobId), payload, job);
  }

  definition(jobId: number | null): SagaDefinition<RestoreContext, RestoreInstallPayload> {
    const b = this.builds;
    const build = (s: SagaStep<BuildContext>): SagaStep<RestoreContext> => ({ name: s.name, execute: (c, io) => s.execute(c.build, io), compensate: (c, io) => s.compensate(c.build, io) });
    const step = (name: string, execute: SagaStep<RestoreContext>['execute'], compensate: SagaStep<RestoreContext>['compensate']): SagaStep<RestoreContext> => ({ name, execute, compensate });
    return {
      name: INSTALL_RESTORE_SAGA,
      steps: [
        build(b.phpUser()),
        step('home', (c, io) => this.restore.restoreHome(c, io), (c, io) => b.home().compensate(c.build, io)),
        step('tree', (c, io) => this.restore.relink(c, io), async () => undefined),
        build(b.configFiles()),
        step('database', (c, io) => b.database().execute(c.build, io), (c, io) => this.removal.dropTenant(c.build.install, c.build.dbServer, [c.build.master, ...c.build.replicas], io)),
        step('restore-database', (c, io) => this.restore.restoreDatabase(c, io), async () => undefined),
        build(b.sync()),
        build(b.crons()),
        build(b.ftp()),
        step('certificates', (c, io) => this.restore.restoreCertificates(c, io), (c, io) => this.restore.dropCertificates(c, io)),
        build(b.pools()),
        build(b.webServer()),
        build(b.probeSites()),
        step('dns', (c, io) => this.restore.publish(c, io), (c, io) => this.restore.unpublish(c, io)),
      ],
      loadContext: (payload) => this.restore.load(payload, jobId),
      onCompleted: async (c) => {
        await this.restore.markLive(c);
        await this.audit.record({ actor: c.payload.actor, via: 'worker', action: 'install.restored', targetType: 'install', targetId: c.build.install.id, details: { jobId, backupId: c.backup.id, before: { status: 'removed' }, after: { status: 'live' } } });
      },
      onCompensated: async (c, failure) => {
        await this.serving.backToRemoved(c.build.install.id);
        await this.audit.record({ actor: c.payload.actor, via: 'worker', action: 'install.restore-failed', targetType: 'install', targetId: c.build.install.id, details: { jobId, backupId: c.backup.id, before: { status: 'building' }, after: { status: 'removed' }, failure: failure.slice(0, 500) } });
      },
    };
  }

}
