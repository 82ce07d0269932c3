import { posix } from 'node:path';
import { Inject, Injectable, Optional } from '@nestjs/common';
import { DataSource, In, IsNull, type EntityManager } from 'typeorm';
import { AuditEventRepository, DispatcherConfig, HandlerConfig, Install, InstallBackup, InstallServer, InstallSite, InstallSiteIp, Job, Server, SharedCodeGroup, SiteName, StartupMount } from '@app/catalog';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { TenantDatabases } from '@app/databases';
import { SiteDns } from '@app/dns';
import { ServerAccess } from '@app/hosts';
import { JobDeferredError } from '@app/queue';
import type { StepIO } from '@app/saga';
import { awaitPools, DispatcherFiles, managesPhp, NginxRebuilds, nginxResourceKey, phpResourceKey, poolFileOf, POOL_GENERATIONS_DIR, PoolRebuilds } from '@app/webserver';
import { InstallBuildSteps } from '../build-saga/build-steps.js';
import { decryptSecret } from '../secrets-cipher.js';
import { InstallBackups, isInside, type BackupContents } from './install-backups.service.js';
import type { RemovalContext } from './removal-context.js';
import { RemovalSweep, type SweepResult } from './removal-sweep.service.js';

/** How long a wait for nginx or php-fpm lasts within one run before the job is deferred (and frees the worker slot). */
const WAIT_IN_RUN_MS = 5_000;
const RECHECK_MS = 1_000;
const OPEN = ['ready', 'blocked', 'running'] as const;

const permanent = (message: string) => Object.assign(new Error(message), { permanent: true });

/** A removal's servers that can be acted on (a server that is down is said so; its leftovers show in the sweep). */
const up = (servers: readonly Server[]) => servers.filter((s) => s.state !== 'down');

/**
 * Taking the install off its servers' nginx and php-fpm before anything is
 * touched (step `offline`), and putting it back when the removal is undone
 * before its pivot (a backup that could not be taken).
 */
@Injectable()
export class RemovalServing {
  constructor(
    private readonly dataSource: DataSource,
    private readonly access: ServerAccess,
    private readonly builds: InstallBuildSteps,
    private readonly rebuilds: NginxRebuilds,
    private readonly pools: PoolRebuilds,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
  ) {}

  /**
   * Step `offline`: the install is `removing` (set with the request), which
   * the renderers leave out: its dispatchers' nginx and its handlers'
   * php-fpm are rebuilt, and the step waits until the generation each has
   * loaded no longer has its vhost or pool (the shop stops serving before
   * its backup, so no order lands between the dump and the drop).
   */
  async offline({ install, servers }: RemovalContext, io: StepIO): Promise<void> {
    const now = await this.dataSource.getRepository(Install).findOneByOrFail({ id: install.id });
    if (now.status !== 'removing') throw permanent(`install ${install.id} is ${now.status}, not removing: changed by someone else`);
    const dispatchers = up(servers).filter((s) => s.roles.includes('dispatcher'));
    const handlers = up(servers).filter((s) => managesPhp(s, this.config));
    const deadline = Date.now() + WAIT_IN_RUN_MS;
    for (let round = 0; ; round++) {
      const vhosts = await this.stillLoaded(dispatchers, 'nginx', install, round > 0);
      const poolsLeft = await this.stillLoaded(handlers, 'php', install, round > 0);
      if (vhosts.length === 0 && poolsLeft.length === 0) {
        io.log(`no vhost of ${install.fsName} on ${dispatchers.map((s) => s.hostname).join(', ') || 'any dispatcher'}, no pool on ${handlers.map((s) => s.hostname).join(', ') || 'any handler'}`);
        return;
      }
      if (round === 0) {
        for (const server of vhosts) await this.rebuilds.request(server.id);
        if (poolsLeft.length > 0) await this.pools.request(poolsLeft.map((s) => s.id));
      }
      if (Date.now() > deadline) throw new JobDeferredError(`waiting for ${[...vhosts.map((s) => `nginx of ${s.hostname}`), ...poolsLeft.map((s) => `php-fpm of ${s.hostname}`)].join(', ')} to drop the install`, RECHECK_MS);
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
  }

  /** Compensation of `offline` (a backup that could not be taken): the install back to its status, served again as before. */
  async online({ install, servers, payload }: RemovalContext, io: StepIO): Promise<void> {
    const back = await this.dataSource.transaction(async (m) => {
      const moved = await m.update(Install, { id: install.id, status: 'removing' }, { status: payload.fromStatus });
      if ((moved.affected ?? 0) === 0) return false;
      await this.rebuilds.requestForInstall(install.id, m);
      await this.pools.request(up(servers).filter((s) => managesPhp(s, this.config)).map((s) => s.id), m);
      return true;
    });
    io.log(back ? `install ${install.id} is ${payload.fromStatus} again` : `install ${install.id} was not removing: left as it is`);
    if (payload.fromStatus !== 'live') return;
    const context = await this.builds.loadContext(install.id);
    await awaitPools(this.pools, install, up([context.master, ...context.replicas]).filter((s) => managesPhp(s, this.config)), io.log);
    await this.builds.webServer().execute(context, io);
  }

  /** The restore was undone: names, IPs and slot given back (once), the install `removed` again, its servers rebuilt without it. */
  async backToRemoved(installId: number): Promise<void> {
    await this.dataSource.transaction(async (m) => {
      const marked = await m.update(Install, { id: installId, status: In(['building', 'live']) }, { status: 'removed', removedAt: new Date(), statusReason: 'restore failed: removed again' });
      if ((marked.affected ?? 0) === 0) return;
      await this.requestRebuilds(m, installId);
      const sites = await m.find(InstallSite, { where: { installId } });
      if (sites.length > 0) await m.delete(InstallSiteIp, { installSiteId: In(sites.map((s) => s.id)) });
      await m.delete(SiteName, { installId });
      const install = await m.findOneByOrFail(Install, { id: installId });
      if (install.sharedCodeGroupId !== null) {
        await m.createQueryBuilder().update(SharedCodeGroup).set({ installCount: () => 'install_count - 1' }).where('id = :id AND install_count > 0', { id: install.sharedCodeGroupId }).execute();
      }
    });
  }

  /** In the caller's transaction: the install's dispatchers and the handlers running its PHP rebuilt from the catalog. */
  async requestRebuilds(m: EntityManager, installId: number): Promise<void> {
    await this.rebuilds.requestForInstall(installId, m);
    const rows = await m.find(InstallServer, { where: { installId } });
    const handlers = rows.length ? await m.find(Server, { where: { id: In(rows.map((r) => r.serverId)) } }) : [];
    await this.pools.request(handlers.filter((s) => managesPhp(s, this.config)).map((s) => s.id), m);
  }

  /** The servers whose loaded generation still has the install's vhost (nginx) or pool (php); a failed rebuild with none queued is an error. */
  private async stillLoaded(servers: readonly Server[], kind: 'nginx' | 'php', install: Install, failures: boolean): Promise<Server[]> {
    if (servers.length === 0) return [];
    const rows = kind === 'nginx'
      ? await this.dataSource.getRepository(DispatcherConfig).find({ where: { serverId: In(servers.map((s) => s.id)) } })
      : await this.dataSource.getRepository(HandlerConfig).find({ where: { serverId: In(servers.map((s) => s.id)) } });
    const left: Server[] = [];
    for (const server of servers) {
      const row = rows.find((r) => r.serverId === server.id);
      if (!row?.liveGeneration) continue;
      const executor = this.access.executorFor(server);
      const loaded = kind === 'nginx'
        ? (await new DispatcherFiles(executor, server).installFileIn(row.liveGeneration, install.fsName)) !== null
        : (await executor.run(server, ['test', '-e', posix.join(server.phpFpmPoolDir!, POOL_GENERATIONS_DIR, row.liveGeneration, poolFileOf(install))])).exitCode === 0;
      if (!loaded) continue;
      if (failures && row.lastError) {
        const key = kind === 'nginx' ? nginxResourceKey(server.id) : phpResourceKey(server.id);
        const open = await this.dataSource.getRepository(Job).count({ where: { resourceKey: key, state: In([...OPEN]) } });
        if (open === 0) throw new Error(`the last ${kind === 'nginx' ? 'nginx' : 'php-fpm'} rebuild of ${server.hostname} failed: ${row.lastError}`);
      }
      left.push(server);
    }
    return left;
  }
}

/**
 * The effects of removing an install (issue 17), one method per saga step,
 * each idempotent. The deletes reuse the build saga's compensations (which
 * remove only what the install made: a home with its marker, an account
 * with its comment, a database with its comment, a user with its password),
 * so a removal never touches a shared pool, a shared checkout or another
 * install's files whatever the names.
 */
@Injectable()
export class RemoveInstallSteps {
  constructor(
    private readonly dataSource: DataSource,
    private readonly builds: InstallBuildSteps,
    private readonly tenants: TenantDatabases,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
    @Optional() private readonly dns?: SiteDns,
  ) {}

  /** Step `crons`: the install's cron.d file on each of its servers (the build's compensation). */
  async crons(context: RemovalContext, io: StepIO): Promise<void> {
    await this.builds.crons().compensate(this.acting(context, io), io);
    io.log(`cron files removed on ${up(context.servers).map((s) => s.hostname).join(', ')}`);
  }

  /** Step `mounts`: the install's startup_mounts rows, and the bind mounts the mounts task made of them unmounted (the home can go then). */
  async mounts(context: RemovalContext, io: StepIO): Promise<void> {
    const gone = await this.dataSource.getRepository(StartupMount).count({ where: { installId: context.install.id } });
    await this.builds.unmountFtp(this.acting(context, io), io);
    io.log(`${gone} startup mount row(s) removed, their bind mounts unmounted`);
  }

  /** Step `ftp`: the FTP account (the build's compensation). */
  async ftp(context: RemovalContext, io: StepIO): Promise<void> {
    await this.builds.ftp().compensate(this.acting(context, io), io);
    io.log(`FTP account ${context.install.fsName} removed`);
  }

  /** Step `php`: its pools are gone (step `offline`); its system user and group on each server where the engine manages PHP (only the install's own). */
  async php(context: RemovalContext, io: StepIO): Promise<void> {
    await this.builds.phpUser().compensate(this.acting(context, io), io);
  }

  /** Step `copies`: the home on every server but the master (only one whose marker names this install). */
  async copies(context: RemovalContext, io: StepIO): Promise<void> {
    await this.builds.sync().compensate(this.acting(context, io), io);
  }

  /** Step `home`: the home on the master (only if its marker names this install). */
  async home(context: RemovalContext, io: StepIO): Promise<void> {
    await this.builds.home().compensate(this.acting(context, io), io);
  }

  /**
   * Step `database`: the install's accounts (those with its password) and
   * its database (its comment). Unlike the build's compensation, the
   * install's database_updates rows stay: they are its history, and a
   * restored database holds those updates.
   */
  async database({ install, dbServer, servers }: RemovalContext, io: StepIO): Promise<void> {
    if (dbServer) await this.dropTenant(install, dbServer, servers, io);
  }

  /** The install's database accounts (those with its password) and its database (its comment); its database_updates rows stay. */
  async dropTenant(install: Install, dbServer: Server, servers: readonly Server[], io: StepIO): Promise<void> {
    const hosts = await this.tenants.accountHosts(dbServer, [...new Set(servers.map((s) => s.privateIp ?? '127.0.0.1'))]);
    const login = { user: install.dbUser, password: decryptSecret(this.config.secretsKey, install.dbPasswordEnc) };
    const left = await this.tenants.dropUser(dbServer, login, install.dbName, hosts);
    for (const account of left) io.log(`left ${account} on ${dbServer.hostname}: not created by this install`);
    const dropped = await this.tenants.dropDatabase(dbServer, install.dbName, { installId: install.id });
    io.log(dropped === 'not-ours' ? `left database ${install.dbName} on ${dbServer.hostname}: not created by this install` : `database ${install.dbName} and user ${install.dbUser} ${dropped === 'absent' ? 'already gone' : 'dropped'} on ${dbServer.hostname}`);
  }

  /** Step `dns`: the A/AAAA records of every name of its sites, in the zones the company manages. */
  async unpublish({ sites }: RemovalContext, io: StepIO): Promise<void> {
    const names = siteNamesOf(sites);
    if (!this.dns) {
      io.log(`no DNS adapter: the records of ${names.join(', ')} are the customer's to remove`);
      return;
    }
    const changes = await this.dns.unpublish(names, io);
    for (const c of changes) io.log(c.managed ? `dns ${c.name}: ${c.before.map((r) => r.content).join(', ') || 'no record'} -> removed` : `dns ${c.name}: zone not managed here, the customer removes its records`);
  }

  /**
   * Step `release`: in one transaction, once (removedAt marks it): the sites'
   * IPs, the names they claimed and the code group slot given back. The
   * install_sites and install_servers rows stay (its history; a restore
   * uses them).
   */
  async release({ install, payload }: RemovalContext, io: StepIO): Promise<void> {
    const released = await this.dataSource.transaction(async (m) => {
      const marked = await m.update(Install, { id: install.id, status: 'removing', removedAt: IsNull() }, { removedAt: new Date() });
      if ((marked.affected ?? 0) === 0) return false;
      const sites = await m.find(InstallSite, { where: { installId: install.id } });
      if (sites.length > 0) await m.delete(InstallSiteIp, { installSiteId: In(sites.map((s) => s.id)) });
      await m.delete(SiteName, { installId: install.id });
      const now = await m.findOneByOrFail(Install, { id: install.id });
      // A failed install gave its slot back when it failed.
      if (now.sharedCodeGroupId !== null && payload.fromStatus !== 'failed') {
        await m.createQueryBuilder().update(SharedCodeGroup).set({ installCount: () => 'install_count - 1' }).where('id = :id AND install_count > 0', { id: now.sharedCodeGroupId }).execute();
      }
      return true;
    });
    io.log(released ? 'IPs, site names and the code group slot released' : 'released by an earlier run');
  }

  /** The build's view of the install for its compensations: the servers that are up (a down one is said so). */
  private acting(context: RemovalContext, io: StepIO): RemovalContext['build'] {
    for (const server of context.servers.filter((s) => s.state === 'down')) io.log(`${server.hostname} is down: what the install has there stays until it is back (the sweep says so)`);
    return { ...context.build, replicas: up(context.build.replicas) };
  }

}

/** The steps around the deletes: the backup before, the certificates and the verification sweep after. */
@Injectable()
export class RemovalRecordSteps {
  constructor(
    private readonly dataSource: DataSource,
    private readonly access: ServerAccess,
    private readonly backups: InstallBackups,
    private readonly sweeper: RemovalSweep,
    private readonly audit: AuditEventRepository,
  ) {}

  /** The removal is done: the install `removed` (its row kept), the audit event with what it was, where its backup is, and the sweep. */
  async completed(c: RemovalContext): Promise<void> {
    await this.dataSource.getRepository(Install).update({ id: c.install.id }, { status: 'removed', statusReason: null, removedAt: new Date() });
    const backup = await this.backups.ofJob(c.install.id, c.jobId);
    const contents = backup?.contents as BackupContents | undefined;
    await this.audit.record({
      actor: c.payload.actor,
      via: 'worker',
      action: 'install.removed',
      targetType: 'install',
      targetId: c.install.id,
      details: {
        jobId: c.jobId,
        requestedVia: c.payload.via,
        before: { status: c.payload.fromStatus, fsName: c.install.fsName, names: siteNamesOf(c.sites), servers: c.servers.map((x) => x.hostname), groupId: c.install.sharedCodeGroupId, database: c.install.dbName },
        after: { status: 'removed', backup: backup ? { id: backup.id, server: c.master.hostname, path: backup.path, expiresAt: backup.expiresAt, sizeBytes: backup.sizeBytes } : null },
        sweep: contents?.sweep ?? null,
      },
    });
  }

  /** Undone before anything was deleted (the backup failed): the install is as it was. */
  async undone(c: RemovalContext, failure: string): Promise<void> {
    await this.audit.record({
      actor: c.payload.actor,
      via: 'worker',
      action: 'install.remove-failed',
      targetType: 'install',
      targetId: c.install.id,
      details: { jobId: c.jobId, before: { status: 'removing' }, after: { status: c.payload.fromStatus }, failure: failure.slice(0, 500) },
    });
  }

  /** Step `backup` (see InstallBackups). */
  async backup(context: RemovalContext, io: StepIO): Promise<void> {
    await this.backups.take(context, io);
  }

  /** Compensation of `backup`: its files removed, the row `failed` (the install is back as it was). */
  async dropBackup({ install, jobId }: RemovalContext, io: StepIO): Promise<void> {
    const row = await this.backups.ofJob(install.id, jobId);
    if (!row) return;
    await this.backups.removeFiles(row);
    await this.dataSource.getRepository(InstallBackup).update({ id: row.id }, { state: 'failed', error: 'the removal was undone before anything was deleted' });
    io.log(`backup ${row.id} discarded`);
  }

  /**
   * Step `certificates`: each site's certificate files on the servers that
   * held them (below their certs root), unless another install's site uses
   * the same file; the sites no longer name them (the backup does).
   */
  async certificates(context: RemovalContext, io: StepIO): Promise<void> {
    const { install, servers } = context;
    const contents = (await this.backups.ofJob(install.id, context.jobId))?.contents as BackupContents | undefined;
    for (const cert of contents?.certificates ?? []) {
      for (const path of [cert.pem, cert.key]) {
        const shared = await this.dataSource
          .getRepository(InstallSite)
          .createQueryBuilder('s')
          .innerJoin(Install, 'i', 'i.id = s.installId')
          .where('(s.sslPemPath = :p OR s.sslKeyPath = :p) AND s.installId <> :id AND i.status NOT IN (:...gone)', { p: path, id: install.id, gone: ['failed', 'removed'] })
          .getCount();
        if (shared > 0) {
          io.log(`${path} is also another install's certificate: left`);
          continue;
        }
        for (const server of up(servers).filter((s) => cert.servers.includes(s.id) && isInside(s.certsRoot, path))) {
          await this.access.executorFor(server).remove(server, path);
          io.log(`removed ${path} on ${server.hostname}`);
        }
      }
    }
    await this.dataSource.getRepository(InstallSite).update({ installId: install.id }, { sslPemPath: null, sslKeyPath: null });
  }

  /** Step `sweep`: nothing of the install left anywhere; its result is kept with the backup (and goes to the audit event). A leftover fails the step. */
  async sweep(context: RemovalContext, io: StepIO): Promise<void> {
    const result = await this.runSweep(context);
    for (const item of result.items) io.log(`sweep ${item.where} ${item.what} ${item.name}: ${item.state}${item.detail ? ` (${item.detail})` : ''}`);
    const row = await this.backups.ofJob(context.install.id, context.jobId);
    if (row) await this.dataSource.getRepository(InstallBackup).update({ id: row.id }, { contents: { ...(row.contents ?? {}), sweep: result } as never });
    if (result.leftovers.length > 0) throw new Error(`the sweep found ${result.leftovers.length} leftover(s): ${result.leftovers.map((l) => `${l.where} ${l.what} ${l.name}`).join('; ')}`);
    io.log(`sweep: ${result.checked} item(s) checked, nothing left`);
  }

  async runSweep(context: RemovalContext): Promise<SweepResult> {
    const contents = (await this.backups.ofJob(context.install.id, context.jobId))?.contents as BackupContents | undefined;
    return this.sweeper.sweep({ install: context.install, servers: context.servers, dbServer: context.dbServer, names: siteNamesOf(context.sites), certificates: contents?.certificates ?? [] });
  }

}

/** Every hostname and secure hostname of the sites. */
export function siteNamesOf(sites: readonly Pick<InstallSite, 'hostname' | 'secureHostname'>[]): string[] {
  return [...new Set(sites.flatMap((s) => [s.hostname, ...(s.secureHostname ? [s.secureHostname] : [])]))];
}
