import { posix } from 'node:path';
import { Inject, Injectable } from '@nestjs/common';
import { DataSource, In } from 'typeorm';
import bcrypt from 'bcryptjs';
import { DatabaseUpdate, DispatcherConfig, FtpAccount, Install, InstallServer, InstallSite, InstallSiteIp, Server, ServerIp, SharedCodeGroup, StartupMount } from '@app/catalog';
import { CODE_LINK, CodeReleases, planTree, renderTemplate, type CheckoutEntry, type CodebaseManifest } from '@app/codebases';
import { registerSecrets } from '@app/common';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { prepareSql, splitSql, sqlChecksum, TenantDatabases, type TenantLogin, type TenantOwner } from '@app/databases';
import { BindMounts } from '@app/ftp';
import { checkServerPath, PathExistsError, ServerAccess } from '@app/hosts';
import { MailService } from '@app/mail';
import { awaitPools, describe as describeAnswer, NginxPipeline, NginxRebuilds, PoolRebuilds, PHP_PRIVATE_DIR, PHP_SESSIONS_DIR, PHP_TMP_DIR, phpUserOf, SiteProbe, type VhostState } from '@app/webserver';
import { JobDeferredError } from '@app/queue';
import type { SagaStep, StepIO } from '@app/saga';
import { decryptSecret } from '../secrets-cipher.js';
import { checkoutOn, cronFileOn, ftpRootOn, groupOn, homeOn, type BuildContext } from './build-context.js';
import { CRON_FILE_MODE, renderCronFile } from './cron-file.js';
import { InstallUsers } from './install-users.js';
import { InstallValues, OPTIONAL_PREFIXES, siteValues } from './install-values.js';

/** How long the webserver step waits within one run before it defers its job (and frees the worker slot). */
const WEBSERVER_WAIT_IN_RUN_MS = 5_000;
/** When a deferred webserver step looks again. */
const WEBSERVER_RECHECK_MS = 1_000;

/** How many connections a dump's tables are made on at once (each table costs the database server a dozen disk syncs). */
const SQL_TABLE_CONNECTIONS = 4;

/** How many release listings an engine keeps (a few groups' releases on a few servers). */
const RELEASE_LISTINGS_KEPT = 32;
/** How many small release files (templates, SQL updates) an engine keeps, each at most RELEASE_FILE_KEPT_BYTES. */
const RELEASE_FILES_KEPT = 256;
const RELEASE_FILE_KEPT_BYTES = 256 * 1024;

/** In a home the engine made: who made it (the home of another install, or a directory nobody's install made, has none or another). */
export const HOME_MARKER = '.shop-install';
/** How long the probe asks the sites (with backoff) before the build gives up on them. */
const PROBE_BOUND_MS = 30_000;

/**
 * The targets of an install's bind mounts in its FTP tree, made to match
 * their sources: a directory for a directory; for a file (an image) an
 * empty file (`mount --bind` of a file needs a file), replacing the empty
 * directory an earlier build made there. A source that does not exist (yet)
 * gets a directory. Prints `d|f <target>` per pair. Never follows a link.
 */
const MOUNT_TARGETS_SCRIPT = String.raw`
while [ $# -gt 1 ]; do
  src=$1; tgt=$2; shift 2
  if [ -f "$src" ] && [ ! -L "$src" ]; then
    if [ -d "$tgt" ] && [ ! -L "$tgt" ]; then rmdir -- "$tgt" || exit 1; fi
    [ -e "$tgt" ] || [ -L "$tgt" ] || : > "$tgt" || exit 1
    printf 'f %s
' "$tgt"
  else
    mkdir -p -- "$tgt" || exit 1
    printf 'd %s
' "$tgt"
  fi
done
`;

/** The bind mounts of an install's copied paths into its FTP tree: `<home>/<copy>` on `<ftp root>/<copy with / as _>`. */
export function ftpMountsOf(home: string, ftpRoot: string, copies: readonly string[]): { source: string; target: string }[] {
  return copies.map((c) => ({ source: posix.join(home, c), target: posix.join(ftpRoot, c.replace(/\//g, '_')) }));
}

/** Build steps whose effects all live under the home are undone by removing the home (step `home`). */
const NOTHING_OF_ITS_OWN = async () => undefined;

/**
 * The steps of an install's build (SPEC.md, "Build"), in order. Each is
 * idempotent, and its compensation removes only what this install made.
 */
@Injectable()
export class InstallBuildSteps {
  /** Release listings by server and path (releaseEntries). */
  private readonly listings = new Map<string, CheckoutEntry[]>();
  /** Small release files by server and path (releaseFile). */
  private readonly files = new Map<string, Buffer>();

  constructor(
    private readonly dataSource: DataSource,
    private readonly access: ServerAccess,
    private readonly tenants: TenantDatabases,
    private readonly mail: MailService,
    private readonly rebuilds: NginxRebuilds,
    private readonly probe: SiteProbe,
    private readonly pipeline: NginxPipeline,
    private readonly values: InstallValues,
    private readonly users: InstallUsers,
    private readonly poolRebuilds: PoolRebuilds,
    private readonly releases: CodeReleases,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
    private readonly mounts: BindMounts,
  ) {}

  async loadContext(installId: number, jobId: number | null = null): Promise<BuildContext> {
    const m = this.dataSource.manager;
    const install = await m.findOneByOrFail(Install, { id: installId });
    if (install.sharedCodeGroupId === null) throw new Error(`install ${install.id} has no code group yet: ${install.statusReason ?? 'waiting'}`);
    const group = await m.findOneByOrFail(SharedCodeGroup, { id: install.sharedCodeGroupId });
    if (group.state !== 'ready' || !group.manifest) throw new Error(`code group ${group.name} is ${group.state}, not ready`);
    const rows = await m.find(InstallServer, { where: { installId }, order: { id: 'ASC' } });
    const servers = await m.find(Server, { where: { id: In(rows.map((r) => r.serverId)) } });
    const byId = new Map(servers.map((s) => [s.id, s]));
    const sites = await m.find(InstallSite, { where: { installId }, order: { id: 'ASC' } });
    const siteIps = sites.length
      ? await m
          .createQueryBuilder(InstallSiteIp, 'h')
          .innerJoin(ServerIp, 'ip', 'ip.id = h.serverIpId')
          .select(['h.installSiteId AS siteId', 'h.serverId AS serverId', 'ip.ip AS ip'])
          .where('h.installSiteId IN (:...ids)', { ids: sites.map((s) => s.id) })
          .orderBy('h.id', 'ASC')
          .getRawMany<{ siteId: number; serverId: number; ip: string }>()
      : [];
    // Whatever this job prints, journals or fails with never shows them (a failing statement quoting a password).
    registerSecrets(decryptSecret(this.config.secretsKey, install.dbPasswordEnc));
    if (install.secretsEnc) registerSecrets(...Object.values(JSON.parse(decryptSecret(this.config.secretsKey, install.secretsEnc)) as Record<string, string>));
    const revision = install.codeRevision ?? group.revision;
    if (!revision) throw new Error(`code group ${group.name} has no revision`);
    return {
      install,
      sites,
      siteIps: siteIps.map((r) => ({ siteId: Number(r.siteId), serverId: Number(r.serverId), ip: r.ip })),
      group,
      revision,
      manifest: await this.releases.recordedManifest(group, revision),
      master: byId.get(install.masterServerId!)!,
      replicas: rows.filter((r) => r.serverId !== install.masterServerId && r.role !== 'cloud').map((r) => byId.get(r.serverId)!),
      dbServer: await m.findOneByOrFail(Server, { id: install.dbServerId! }),
      jobId,
    };
  }

  /**
   * The build's steps in two lanes after the PHP user: the database and its
   * SQL on the database server, beside the home, tree, config, sync, crons,
   * FTP, pool and vhost on the install's servers (the vhost was asked for
   * when the order came). The probe needs both; the mail everything.
   */
  steps(): SagaStep<BuildContext>[] {
    return [
      this.phpUser(),
      this.home(),
      this.tree(),
      this.configFiles(),
      { ...this.database(), after: ['php-user'] },
      this.sqlUpdates(),
      { ...this.sync(), after: ['config'] },
      this.crons(),
      this.ftp(),
      this.pools(),
      this.webServer(),
      { ...this.probeSites(), after: ['webserver', 'sql-updates'] },
      this.welcomeMail(),
    ];
  }

  /**
   * 0. The install's system user and group on each of its servers whose PHP
   * the engine manages: its pool runs as them, what it may write is theirs,
   * its config files are readable by their group alone. An account of that
   * name the install did not make is a conflict (never adopted).
   */
  phpUser(): SagaStep<BuildContext> {
    return {
      name: 'php-user',
      execute: async ({ install, master, replicas }, io) => {
        for (const server of [master, ...replicas].filter((s) => this.users.managed(s))) {
          const outcome = await this.users.ensure(server, install);
          io.log(`system user ${phpUserOf(install)} on ${server.hostname} (${outcome === 'ours' ? 'made by an earlier run' : 'created'})`);
        }
      },
      compensate: async ({ install, master, replicas }, io) => {
        for (const server of [master, ...replicas].filter((s) => this.users.managed(s))) {
          const outcome = await this.users.remove(server, install);
          if (outcome === 'not-ours') io.log(`left the account ${phpUserOf(install)} on ${server.hostname}: not created by this install`);
        }
      },
    };
  }

  /**
   * 1. The home directory on the master: a new directory, never one that
   * exists (a name derived from an order must not adopt anything), with a
   * marker naming this install written in the same operation. A run that
   * finds the home with this install's marker made it before (and crashed).
   */
  home(): SagaStep<BuildContext> {
    return {
      name: 'home',
      execute: async ({ install, master }, io) => {
        await this.newHome(master, install, io);
      },
      compensate: async ({ install, master }, io) => {
        await this.removeHome(master, install, io);
      },
    };
  }

  /**
   * 2. The tree: real directories only where the manifest needs them,
   * relative symlinks into the checkout everywhere else (so the same home
   * works on every server with the same layout), copies, writable
   * directories owned by the web user. A few commands in all.
   */
  tree(): SagaStep<BuildContext> {
    return {
      name: 'tree',
      execute: async (context, io) => {
        const { install, master, group, revision, manifest } = context;
        const executor = this.access.executorFor(master);
        const home = homeOn(master, install);
        // The home's one way into the code: `.code`, the link a rollout switches.
        await executor.symlinkMany(master, [{ path: posix.join(home, CODE_LINK), target: posix.relative(home, checkoutOn(master, group, revision)) }]);
        if (install.codeRevision !== revision) {
          await this.dataSource.getRepository(Install).update({ id: install.id }, { codeRevision: revision });
          install.codeRevision = revision;
        }
        const plan = await this.applyTree(context, manifest, { copies: 'all' });
        io.log(`tree: ${plan.dirs.length} directories, ${plan.links.length} links, ${plan.copies.length} copies, ${plan.writable.length} writable`);
      },
      compensate: NOTHING_OF_ITS_OWN,
    };
  }

  /**
   * Makes the home on the master (or `server`) what `manifest`'s tree over the release at
   * `.code` asks (see planTree): directories, links through `.code`, copies
   * (every one at a build; at a rollout only those the home lacks: a copy is
   * the customer's), writable directories, the PHP user's own directories.
   * Idempotent; what it adds to a home that has a tree is what a new
   * manifest adds. Returns the plan.
   */
  async applyTree(context: BuildContext, manifest: CodebaseManifest, options: { copies: 'all' | 'missing'; revision?: string; server?: Server }): Promise<ReturnType<typeof planTree>> {
    const { install, group } = context;
    const master = options.server ?? context.master;
    const executor = this.access.executorFor(master);
    const home = homeOn(master, install);
    const checkout = checkoutOn(master, group, options.revision ?? context.revision);
    const plan = planTree(manifest, await this.releaseEntries(master, checkout));
    const inHome = (p: string) => checkServerPath(master, posix.join(home, p), { allowRoot: false });
    const code = posix.join(home, CODE_LINK);
    if (plan.dirs.length > 0) await executor.mkdirs(master, plan.dirs.map(inHome));
    await executor.symlinkMany(
      master,
      plan.links.map((l) => {
        const path = inHome(l.path);
        checkServerPath(master, posix.join(checkout, l.target));
        return { path, target: posix.relative(posix.dirname(path), posix.join(code, l.target)) };
      }),
    );
    let copies = plan.copies;
    if (options.copies === 'missing' && copies.length > 0) {
      const present = (await executor.mustRun(master, ['sh', '-c', 'for p do [ -e "$p" ] && printf "%s\\n" "$p"; done; exit 0', 'check', ...copies.map(inHome)])).split('\n').filter(Boolean);
      copies = copies.filter((c) => !present.includes(inHome(c)));
    }
    if (copies.length > 0) {
      await executor.copyTree(master, copies.map((c) => ({ from: checkServerPath(master, posix.join(checkout, c)), to: inHome(c) })));
    }
    // Where the engine manages PHP: the install's own user writes, nginx's group reads (setgid: what PHP writes keeps that group); else the shared web user.
    const managed = this.users.managed(master);
    const owner = managed ? `${phpUserOf(install)}:${this.users.webGroup()}` : this.config.webUser;
    if (plan.writable.length > 0) {
      const dirs = plan.writable.map(inHome);
      await executor.mkdirs(master, dirs);
      // What the manifest says is writable, and only that, becomes the PHP user's: a writable copy with what is in it.
      const copied = plan.writable.filter((w) => plan.copies.some((c) => w === c || w.startsWith(`${c}/`) || c.startsWith(`${w}/`)));
      await executor.chown(master, dirs.filter((_, i) => !copied.includes(plan.writable[i]!)), owner);
      if (copied.length > 0) await executor.chown(master, copied.map(inHome), owner, { recursive: true });
      await executor.chmod(master, dirs, managed ? 0o2770 : 0o770);
    }
    if (managed) {
      // The pool's sessions and upload tmp: the install's alone.
      const own = [PHP_PRIVATE_DIR, PHP_SESSIONS_DIR, PHP_TMP_DIR].map(inHome);
      await executor.mkdirs(master, own);
      await executor.chown(master, own, `${phpUserOf(install)}:${phpUserOf(install)}`);
      await executor.chmod(master, own, 0o700);
    }
    return plan;
  }

  /** 3. Config files rendered from the manifest's templates (atomic, 0640, readable by the web user's group). */
  configFiles(): SagaStep<BuildContext> {
    return {
      name: 'config',
      execute: async (context, io) => {
        await this.renderConfig(context, context.master, io);
      },
      compensate: NOTHING_OF_ITS_OWN,
    };
  }

  /**
   * 4. The tenant database (its comment names this install) and its user
   * (with this install's password), allowed from the install's servers and
   * the database server itself. A database or account of that name that
   * this install did not create is a conflict: the build fails, and it is
   * left as it is.
   */
  database(): SagaStep<BuildContext> {
    return {
      name: 'database',
      execute: async (context, io) => {
        const { install, manifest, dbServer, master, replicas } = context;
        const hosts = await this.tenants.accountHosts(dbServer, clientHosts([master, ...replicas]));
        const created = await this.tenants.createDatabaseWithUser(dbServer, install.dbName, manifest.sql?.session?.charset ?? 'utf8mb4', owner(install), this.login(install), hosts);
        context.freshDatabase = created === 'created';
        io.log(`database ${install.dbName} (${created === 'ours' ? 'made by an earlier run' : 'created'}) and user ${install.dbUser} on ${dbServer.hostname}`);
      },
      compensate: async ({ install, dbServer, master, replicas }, io) => {
        const hosts = await this.tenants.accountHosts(dbServer, clientHosts([master, ...replicas]));
        const left = await this.tenants.dropUser(dbServer, this.login(install), install.dbName, hosts);
        for (const account of left) io.log(`left ${account} on ${dbServer.hostname}: not created by this install`);
        const dropped = await this.tenants.dropDatabase(dbServer, install.dbName, owner(install));
        if (dropped === 'not-ours') io.log(`left database ${install.dbName} on ${dbServer.hostname}: not created by this install`);
        await this.dataSource.getRepository(DatabaseUpdate).delete({ installId: install.id });
        io.log(`dropped what this install created on ${dbServer.hostname}`);
      },
    };
  }

  /**
   * 5. SQL updates in file order, each recorded once applied; then the
   * manifest's `install` SQL templates. Every run starts from an empty
   * database (see below), so a crash mid-file is repaired by running again.
   */
  sqlUpdates(): SagaStep<BuildContext> {
    return {
      name: 'sql-updates',
      execute: async (context, io) => {
        const { install, master, group, manifest, dbServer } = context;
        if (!manifest.sql) return;
        const executor = this.access.executorFor(master);
        const checkout = checkoutOn(master, group, context.revision);
        const dir = checkServerPath(master, posix.join(checkout, manifest.sql.updates));
        const names = (await executor.mustRun(master, ['find', dir, '-mindepth', '1', '-maxdepth', '1', '-type', 'f', '-name', '*.sql', '-printf', '%f\\0']))
          .split('\0')
          .filter(Boolean)
          .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
        const updates = this.dataSource.getRepository(DatabaseUpdate);
        // A new install's database holds nothing but what this step puts in. MySQL commits DDL
        // statement by statement, so a worker killed mid-file leaves a half-applied update that
        // cannot be run again: each run of this step starts from an empty database instead.
        // Just created by the database step of this run: empty already, with the manifest's charset.
        if (!context.freshDatabase) await this.tenants.resetDatabase(dbServer, install.dbName, manifest.sql.session?.charset ?? 'utf8mb4', owner(install));
        await updates.delete({ installId: install.id });
        // The shop's own SQL runs as its own user, never as the admin: it can reach its database and nothing else.
        const login = this.login(install);
        const applied = new Set<string>();
        const session = manifest.sql.session ?? {};
        for (const name of names.filter((n) => !applied.has(n))) {
          const text = (await executor.readFile(master, posix.join(dir, name))).toString('utf8');
          // As the shop's installer reads its dump: its comment lines dropped, its table prefix replaced.
          await this.tenants.runStatements(dbServer, install.dbName, login, name, splitSql(prepareSql(text, manifest.sql)), session, { connections: SQL_TABLE_CONNECTIONS });
          await updates.save(updates.create({ installId: install.id, file: name, pluginId: null, checksum: sqlChecksum(text), appliedAt: new Date(), jobId: context.jobId }));
          io.log(`applied ${name}`);
        }
        for (const template of (manifest.sql.templates ?? []).filter((t) => t.event === 'install')) {
          const file = `template:${template.file}`;
          if (applied.has(file)) continue;
          const source = (await executor.readFile(master, posix.join(checkout, template.file))).toString('utf8');
          const text = await renderTemplate(source, 'sql', await this.values.values(context, master), template.file, { optionalPrefixes: OPTIONAL_PREFIXES });
          // Rendered first: the template's own table names get the prefix; the values it rendered are string literals, which keep theirs.
          await this.tenants.runStatements(dbServer, install.dbName, login, template.file, splitSql(prepareSql(text, manifest.sql)), session);
          await updates.save(updates.create({ installId: install.id, file, pluginId: null, checksum: sqlChecksum(text), appliedAt: new Date(), jobId: context.jobId }));
          io.log(`ran ${template.file}`);
        }
      },
      // The database step's compensation drops the database with everything in it.
      compensate: NOTHING_OF_ITS_OWN,
    };
  }

  /** 6. The home to the install's other servers (rsync relayed by the engine), with their own config files. */
  sync(): SagaStep<BuildContext> {
    return {
      name: 'sync',
      execute: async (context, io) => {
        const { install, master, group } = context;
        for (const replica of context.replicas) {
          // Links are relative: they resolve on a server whose home and shared code roots sit alike.
          const layout = (s: Server) => posix.relative(posix.join(s.homeRoot, install.fsName, 'x'), groupOn(s, group));
          if (layout(replica) !== layout(master)) {
            throw new Error(`${replica.hostname} places its home and shared code roots differently from ${master.hostname}: the install's links would not resolve there`);
          }
          // The replica's home is made like the master's (new, marked) before rsync fills it: never one this install did not make.
          await this.newHome(replica, install, io);
          await this.access.sync(master, replica, homeOn(master, install));
          await this.renderConfig(context, replica, io);
          io.log(`synced the home to ${replica.hostname}`);
        }
      },
      compensate: async ({ install, replicas }, io) => {
        for (const replica of replicas) await this.removeHome(replica, install, io);
      },
    };
  }

  /** 7. The install's crons: one cron.d file per server, each command an argument vector run in the home. */
  crons(): SagaStep<BuildContext> {
    return {
      name: 'crons',
      execute: async (context, io) => {
        for (const server of [context.master, ...context.replicas]) await this.writeCrons(context, server, io);
      },
      compensate: async ({ install, master, replicas }) => {
        for (const server of [master, ...replicas]) await this.access.executorFor(server).remove(server, cronFileOn(server, install));
      },
    };
  }

  /**
   * 8. FTP: the directory the account lands in, the bind mounts of the
   * copied paths into it (startup_mounts rows, applied by the mounts task),
   * and the account (bcrypt password). Copies keep their owners.
   */
  ftp(): SagaStep<BuildContext> {
    return {
      name: 'ftp',
      execute: async (context, io) => {
        const { install, master, manifest } = context;
        const executor = this.access.executorFor(master);
        const home = homeOn(master, install);
        const ftpRoot = ftpRootOn(master, install);
        const mounts = ftpMountsOf(home, ftpRoot, manifest.copy);
        await executor.mkdirs(master, [ftpRoot]);
        // A bind mount lands on what its source is: a copied directory on a directory, a copied file (an image) on an empty file.
        const kinds = await executor.mustRun(master, ['sh', '-c', MOUNT_TARGETS_SCRIPT, 'ftp-targets', ...mounts.flatMap((m) => [checkServerPath(master, m.source), checkServerPath(master, m.target)])]);
        const files = kinds.split('\n').filter((l) => l.startsWith('f ')).length;
        // The copies keep the owners the tree step gave them: only what the manifest says is writable is the PHP user's.
        const { user, group } = this.users.phpOwner(master, install);
        const uid = Number((await executor.mustRun(master, ['id', '-u', user])).trim());
        const gid = Number((await executor.mustRun(master, ['getent', 'group', group])).split(':')[2]);
        if (!Number.isInteger(uid) || !Number.isInteger(gid)) throw new Error(`no uid/gid for ${user}:${group} on ${master.hostname}`);
        // Before the transaction: it writes the install's row, which the account's foreign key locks.
        const password = await this.values.ftpPassword(context);
        await this.dataSource.transaction(async (m) => {
          await m.delete(StartupMount, { installId: install.id, serverId: master.id });
          for (const mount of mounts) await m.save(m.create(StartupMount, { installId: install.id, serverId: master.id, ...mount }));
          if (!(await m.findOne(FtpAccount, { where: { installId: install.id } }))) {
            await m.save(m.create(FtpAccount, { installId: install.id, userid: install.fsName, passwd: await bcrypt.hash(password, 10), uid, gid, homedir: ftpRoot, shell: '/usr/sbin/nologin', enabled: true }));
          }
        });
        io.log(`ftp account ${install.fsName}, ${mounts.length} mounts (${files} of a file) on ${master.hostname}`);
      },
      compensate: async (context, io) => {
        const { install } = context;
        await this.dataSource.getRepository(FtpAccount).delete({ installId: install.id });
        await this.unmountFtp(context, io);
      },
    };
  }

  /**
   * Deletes the install's startup_mounts rows and unmounts the bind mounts
   * the mounts task made of them (only the engine's: see BindMounts), so
   * its home can go (a mount point cannot be removed).
   */
  async unmountFtp({ install, master, manifest }: BuildContext, io: StepIO): Promise<void> {
    const rows = await this.dataSource.getRepository(StartupMount).find({ where: { installId: install.id } });
    await this.dataSource.getRepository(StartupMount).delete({ installId: install.id });
    const servers = new Map<number, Server>([[master.id, master]]);
    for (const id of new Set(rows.map((r) => r.serverId).filter((id) => !servers.has(id)))) servers.set(id, await this.dataSource.getRepository(Server).findOneByOrFail({ id }));
    for (const server of servers.values()) {
      if (server.state === 'down') {
        io.log(`${server.hostname} is down: its bind mounts of ${install.fsName} (if any) are unmounted by the mounts task once it is back`);
        continue;
      }
      const targets = new Set(rows.filter((r) => r.serverId === server.id).map((r) => r.target));
      if (server.id === master.id) for (const m of ftpMountsOf(homeOn(server, install), ftpRootOn(server, install), manifest.copy)) targets.add(m.target);
      const run = await this.mounts.applyServer(server, { only: targets });
      for (const target of run.unmounted) io.log(`unmounted ${target} on ${server.hostname}`);
      if (run.failed.length > 0) throw new Error(`could not unmount on ${server.hostname}: ${run.failed.map((f) => `${f.target} (${f.problem})`).join('; ')}`);
    }
  }

  /**
   * 9. The install's php-fpm pool on each of its servers whose PHP the
   * engine manages (its own user, its own socket): asks for each handler's
   * pool rebuild (coalesced) and waits until php-fpm runs the pool as the
   * catalog has it now; waiting defers the job. A pool php-fpm refuses is
   * quarantined and fails the build (undone). A server that is down gets
   * the pool when it is back. The webserver step then points nginx at it.
   */
  pools(): SagaStep<BuildContext> {
    return {
      name: 'pools',
      execute: async ({ install, master, replicas }, io) => {
        const handlers = [master, ...replicas].filter((s) => this.users.managed(s));
        for (const server of handlers.filter((s) => s.state === 'down')) io.log(`${server.hostname} is down: its php-fpm gets this install's pool when it is back`);
        await awaitPools(this.poolRebuilds, install, handlers.filter((s) => s.state !== 'down'), io.log);
      },
      // Nothing of its own: once the install is released (failed), the pool rebuilds it requests drop the pools.
      compensate: NOTHING_OF_ITS_OWN,
    };
  }

  /**
   * 10. The install's vhost on every dispatcher: waits until the generation
   * nginx loaded carries this install's file as the catalog has it now. The
   * order asked for the rebuild; the step asks again only when none is under
   * way and the vhost is still not there (coalesced with every other
   * request). Waiting frees the worker slot (the job is deferred, no attempt
   * used). A quarantined vhost fails the step, and the build is undone. A
   * dispatcher that is down is skipped: it is rebuilt when it is back.
   */
  webServer(): SagaStep<BuildContext> {
    return {
      name: 'webserver',
      execute: async ({ install, master, replicas }, io) => {
        const dispatchers = [master, ...replicas].filter((s) => s.roles.includes('dispatcher'));
        const deadline = Date.now() + WEBSERVER_WAIT_IN_RUN_MS;
        const live = new Set<number>();
        /** Per dispatcher, the live generation last compared: the file is read and rendered again only once it moved (a rebuild takes seconds; looking costs CPU its nginx needs). */
        const compared = new Map<number, string>();
        /**
         * Per dispatcher, its config row as it was when the step last looked for a rebuild under way ('asked' once it
         * asked for one itself): looked at again only once the row moved (a rebuild queued, applied or failed), not every round.
         */
        const looked = new Map<number, string>();
        for (let round = 0; ; round++) {
          if (round === 0) for (const server of dispatchers.filter((s) => s.state === 'down')) io.log(`${server.hostname} is down: its nginx gets this install when it is back`);
          const up = dispatchers.filter((s) => s.state !== 'down' && !live.has(s.id));
          const rows = up.length ? await this.dataSource.getRepository(DispatcherConfig).find({ where: { serverId: In(up.map((s) => s.id)) } }) : [];
          const states = await Promise.all(
            up.map(async (server): Promise<VhostState> => {
              const row = rows.find((r) => r.serverId === server.id);
              // A failed rebuild is looked at every round: it turns into 'failed' once its job gives up.
              const mark = row && !row.lastError ? `${row.liveGeneration}` : null;
              if (mark !== null && compared.get(server.id) === mark) return { state: 'pending' };
              const state = await this.rebuilds.vhostState(server, install.id);
              if (mark !== null) compared.set(server.id, mark);
              return state;
            }),
          );
          const waiting: Server[] = [];
          for (const [i, vhost] of states.entries()) {
            const server = up[i]!;
            if (vhost.state === 'live') live.add(server.id);
            if (vhost.state === 'quarantined') throw Object.assign(new Error(vhost.reason), { permanent: true });
            if (vhost.state === 'failed') throw new Error(vhost.reason);
            if (vhost.state === 'not-served') throw new Error(`${server.hostname} does not serve install ${install.id} (${install.status})`);
            if (vhost.state === 'pending') waiting.push(server);
          }
          // The order asked already (InstallsService), so a rebuild may be under way: ask (once) only when none is queued
          // or running and the vhost is still not live: a rebuild that read the catalog before a step changed it, a
          // resumed build, a dispatcher back up. A request while one runs would queue another whole rebuild beside the
          // build. One after the other: each is a transaction (SQLite has one connection).
          for (const server of waiting) {
            const row = rows.find((r) => r.serverId === server.id);
            const seen = row ? `${row.wantedGeneration}:${row.appliedGeneration}:${row.liveGeneration}:${row.pending}:${row.lastError ?? ''}` : 'none';
            if (looked.get(server.id) === 'asked' || looked.get(server.id) === seen) continue;
            looked.set(server.id, seen);
            if (await this.rebuilds.underWay(server.id)) continue;
            await this.rebuilds.request(server.id);
            looked.set(server.id, 'asked');
          }
          if (waiting.length === 0) {
            io.log(`vhost of ${install.fsName} live on ${dispatchers.filter((s) => s.state !== 'down').map((s) => s.hostname).join(', ') || 'no dispatcher'}`);
            return;
          }
          if (Date.now() > deadline) throw new JobDeferredError(`waiting for the nginx rebuild of ${waiting.map((s) => s.hostname).join(', ')}`, WEBSERVER_RECHECK_MS);
          // At once when a rebuild of this process records its outcome; a rebuild in another process is seen within 100 ms.
          await this.rebuilds.nextChange(100);
        }
      },
      // Nothing of its own: once the install is released (failed), the rebuild it requests drops the vhost.
      compensate: NOTHING_OF_ITS_OWN,
    };
  }

  /**
   * 11. The probe: every site answers through every dispatcher that serves
   * it (a request to the dispatcher's IP for the site with the site's Host),
   * and PHP answers it with 2xx or 3xx: files, config, database user and
   * grants proven together. Asked again with backoff within a bound; then
   * the build fails and is undone. Only the embedded default's own machine
   * may run without nginx, and is then not probed (said so).
   */
  probeSites(): SagaStep<BuildContext> {
    return {
      name: 'probe',
      execute: async ({ install }, io) => {
        const targets = await this.probe.targets(install.id);
        const dispatchers = await this.rebuilds.dispatchersOf(install.id);
        const unserved = new Set<string>();
        for (const server of dispatchers) {
          if (!(await this.pipeline.servesWithoutNginx(server))) continue;
          io.log(`no nginx runs for ${server.hostname} (the embedded default without nginx): not probed there`);
          unserved.add(server.hostname);
        }
        const asked = targets.filter((t) => !unserved.has(t.dispatcher));
        if (asked.length === 0 && unserved.size === 0) throw new Error(`no dispatcher that is up serves install ${install.id}: nothing to prove it answers`);
        const report = await this.probe.probe(asked, { boundMs: PROBE_BOUND_MS, signal: io.signal, log: io.log });
        for (const answer of report.answers) io.log(describeAnswer(answer));
        if (!report.ok) {
          const failing = report.answers.filter((a) => !a.ok);
          throw Object.assign(new Error(`the shop does not answer (${failing.length} of ${report.answers.length}, after ${report.rounds} rounds within ${PROBE_BOUND_MS / 1000} s): ${failing.map(describeAnswer).join('; ')}`), { permanent: true });
        }
      },
      // Nothing of its own: it only asks.
      compensate: NOTHING_OF_ITS_OWN,
    };
  }

  /**
   * 12. The welcome mail: the pivot. From here on nothing is compensated; a
   * failure is retried forward. At least once: a worker killed after the
   * SMTP server accepted the mail and before the journal recorded it sends
   * it again on resume (same Message-ID); that window is the few
   * milliseconds between the server's answer and the journal's commit.
   */
  welcomeMail(): SagaStep<BuildContext> {
    return {
      name: 'mail',
      execute: async (context, io) => {
        const { install, sites } = context;
        const site = sites[0]!;
        const address = siteValues(site);
        const credentials = await this.values.credentials(context);
        const width = Math.max(8, ...credentials.map((c) => c.label.length + 1));
        await this.mail.send({
          to: install.customerEmail,
          subject: `Your shop ${site.hostname} is ready`,
          messageId: `<install-${install.id}-welcome@${site.hostname}>`,
          text: [
            'Hello,',
            '',
            `your shop is installed: ${address.url}`,
            ...(site.secureHostname ? [`Secure address: ${address.secure_url}`] : []),
            '',
            ...(credentials.length > 0 ? ['Your shop\'s administration:', ...credentials.map((c) => `  ${`${c.label}:`.padEnd(width)} ${c.value}`), ''] : []),
            'FTP access to your theme and assets:',
            `  user:     ${install.fsName}`,
            `  password: ${await this.values.ftpPassword(context)}`,
            '',
            'Welcome aboard.',
            '',
          ].join('\n'),
        });
        io.log(`welcome mail to ${install.customerEmail}`);
      },
      compensate: NOTHING_OF_ITS_OWN,
    };
  }

  /** The tree `manifest` asks of a home over a release on a server (its listing kept: see releaseEntries). */
  async treePlan(server: Server, group: SharedCodeGroup, revision: string, manifest: CodebaseManifest): Promise<ReturnType<typeof planTree>> {
    return planTree(manifest, await this.releaseEntries(server, checkoutOn(server, group, revision)));
  }

  /** A file of a release on a server, kept (a release never changes; small files only: templates, SQL updates). */
  async releaseFile(server: Server, path: string): Promise<Buffer> {
    const key = `${server.id} ${path}`;
    const known = this.files.get(key);
    if (known) return known;
    const content = await this.access.executorFor(server).readFile(server, path);
    if (content.length <= RELEASE_FILE_KEPT_BYTES) {
      this.files.set(key, content);
      if (this.files.size > RELEASE_FILES_KEPT) this.files.delete(this.files.keys().next().value!);
    }
    return content;
  }

  /**
   * The entries of a release on a server. A release never changes once made
   * (code-layout.ts), so its listing is kept (a few, newest last): a
   * rollout's installs, and a burst of builds, list it once per server.
   */
  private async releaseEntries(server: Server, checkout: string): Promise<CheckoutEntry[]> {
    const key = `${server.id} ${checkout}`;
    const known = this.listings.get(key);
    if (known) return known;
    const listing = await this.access.executorFor(server).mustRun(server, ['find', checkout, '-mindepth', '1', '-printf', '%y %P\\0'], { timeoutMs: 120_000 });
    const entries: CheckoutEntry[] = listing
      .split('\0')
      .filter(Boolean)
      .map((e) => ({ type: e[0] as CheckoutEntry['type'], path: e.slice(2) }));
    // An empty listing (a release being synced, a path gone) is never kept.
    if (entries.length > 0) {
      this.listings.set(key, entries);
      if (this.listings.size > RELEASE_LISTINGS_KEPT) this.listings.delete(this.listings.keys().next().value!);
    }
    return entries;
  }

  /** The install's cron.d file on one server (also a handler it is added to): each command run in its home as the user its PHP runs as there. */
  async writeCrons({ install, manifest }: BuildContext, server: Server, io: StepIO): Promise<void> {
    const content = renderCronFile(install, manifest.crons ?? [], homeOn(server, install), this.users.phpOwner(server, install).user);
    await this.access.executorFor(server).writeFile(server, cronFileOn(server, install), content, { mode: CRON_FILE_MODE });
    io.log(`crons on ${server.hostname}`);
  }

  /** A new home for the install on a server (with its marker), or the one an earlier run of this install made; anything else is a conflict. */
  private async newHome(server: Server, install: Install, io: StepIO): Promise<void> {
    const home = homeOn(server, install);
    const executor = this.access.executorFor(server);
    try {
      await executor.mkdirNew(server, home, { mode: 0o755, marker: { name: HOME_MARKER, content: homeMarker(install) } });
      io.log(`home ${home} on ${server.hostname}`);
    } catch (error) {
      if (!(error instanceof PathExistsError)) throw error;
      if (!(await this.homeIsOurs(server, install))) {
        throw Object.assign(new Error(`${home} already exists on ${server.hostname} and was not created by this install: it is left as it is`), { permanent: true });
      }
      io.log(`home ${home} on ${server.hostname} (made by an earlier run)`);
    }
  }

  /** Removes the install's home on a server only if this install made it (its marker); anything else there is left alone. */
  private async removeHome(server: Server, install: Install, io: StepIO): Promise<void> {
    const home = homeOn(server, install);
    if (!(await this.homeIsOurs(server, install))) {
      io.log(`${home} on ${server.hostname} was not made by this install (or is gone): left as it is`);
      return;
    }
    await this.access.executorFor(server).remove(server, home);
    io.log(`removed the home on ${server.hostname}`);
  }

  private async homeIsOurs(server: Server, install: Install): Promise<boolean> {
    const executor = this.access.executorFor(server);
    const marker = posix.join(homeOn(server, install), HOME_MARKER);
    if (!(await executor.exists(server, marker))) return false;
    return (await executor.readFile(server, marker)).toString('utf8') === homeMarker(install);
  }

  /** The install's own database account. */
  private login(install: Install): TenantLogin {
    return { user: install.dbUser, password: decryptSecret(this.config.secretsKey, install.dbPasswordEnc) };
  }

  /** The install's config files on one server, with that server's paths (also after the values changed: install.config). */
  async renderConfig(context: BuildContext, server: Server, io: StepIO): Promise<void> {
    const executor = this.access.executorFor(server);
    // Readable by the group of the user the install's PHP runs as on that server: its own where the engine manages PHP, never the shared web user's then.
    const { group } = this.users.phpOwner(server, context.install);
    for (const file of await this.renderedConfig(context, server)) {
      // Owned by the engine's user (root on servers), readable by that group only.
      await executor.writeFile(server, file.path, file.text, { mode: 0o640, owner: `:${group}` });
      io.log(`rendered ${file.target} on ${server.hostname}`);
    }
  }

  /** The install's config files on one server as the context renders them (nothing written: a dry run compares them with what is there). */
  async renderedConfig(context: BuildContext, server: Server): Promise<{ target: string; path: string; text: string }[]> {
    const { install, group, manifest, master, revision } = context;
    const values = await this.values.values(context, server);
    const files: { target: string; path: string; text: string }[] = [];
    for (const template of manifest.templates ?? []) {
      const source = (await this.releaseFile(master, posix.join(checkoutOn(master, group, revision), template.source))).toString('utf8');
      const text = await renderTemplate(source, template.language, values, template.source, { optionalPrefixes: OPTIONAL_PREFIXES });
      files.push({ target: template.target, path: posix.join(homeOn(server, install), template.target), text });
    }
    return files;
  }
}

/** Where the install's PHP connects from: its servers' private IPs (loopback for a server without one). */
function clientHosts(servers: Server[]): string[] {
  return [...new Set(servers.map((s) => s.privateIp ?? '127.0.0.1'))];
}

/** What a home's marker says: the install that made it. */
export function homeMarker(install: Install): string {
  return `shop-engine install ${install.id} (${install.fsName}, order ${install.orderRef})\n`;
}

/** The install as the creator of its tenant database. */
function owner(install: Install): TenantOwner {
  return { installId: install.id };
}
