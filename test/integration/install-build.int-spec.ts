import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { INestApplicationContext, Type } from '@nestjs/common';
import bcrypt from 'bcryptjs';
import mysql from 'mysql2/promise';
import { DataSource } from 'typeorm';
import { DatabaseUpdate, FtpAccount, Install, InstallSite, Job, Server, ServerIp, SharedCodeGroup, StartupMount } from '@app/catalog';
import { buildSampleRepository, CodebasesModule, SAMPLE_MANIFEST, type SampleRepository } from '@app/codebases';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { SqlStatementError, TenantDatabases } from '@app/databases';
import { HostsModule } from '@app/hosts';
import { decryptSecret, InstallBuildSteps, InstallConfigJob, InstallsModule, PrepareService, RemovalModule, type BuildContext, type CreateInstallDto } from '@app/installs';
import { SagaModule, type StepIO } from '@app/saga';
import { NginxRebuilds } from '@app/webserver';
import { createTestCatalog, type TestCatalog } from '../support/catalog.js';
import { eventually, startQueueContext } from '../support/queue-context.js';
import { checkoutGroup, testServer } from '../support/server-roots.js';
import { startSshd, stopSshd } from '../support/sshd.js';
import { writeDbOptionsFile } from '../support/tenant-db-server.js';
import { readTestbed, type SshdServer } from '../support/testbed.js';
import { startDispatcherWeb, stopDispatcherWeb, type DispatcherWeb } from '../support/dispatcher-web.js';
import { fetchSite } from '../support/web-installs.js';
import { vhostOf } from '../support/nginx.js';

/**
 * The build steps of a paid install against real servers: two SSH test
 * dispatchers with their own roots, the testbed's MariaDB as the database
 * server, the sample codebase checked out from git. Run step by step, then
 * compensated: nothing may be left.
 */
describe('install build steps (two SSH dispatchers, real MariaDB)', () => {
  let catalog: TestCatalog;
  let app: INestApplicationContext;
  let ds: DataSource;
  let base: string;
  let repo: SampleRepository;
  let second: SshdServer;
  const servers: Record<string, Server> = {};
  const web: Record<string, DispatcherWeb> = {};
  const groups: Record<string, SharedCodeGroup> = {};
  const io: StepIO = { log: () => undefined, signal: new AbortController().signal };

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'install-build-'));
    chmodSync(base, 0o755);
    [catalog, second, repo] = await Promise.all([createTestCatalog('mariadb', 'install_build'), startSshd(join(base, 'sshd-2'), '127.0.0.7'), buildSampleRepository(join(base, 'repo'))]);
    // A worker: the webserver step waits for the nginx rebuild jobs it asks for.
    app = await startQueueContext(catalog.url, [], { concurrency: 2, pollMs: 20, reapEveryMs: 500 }, [
      // The removal module too: the worker refuses to start with job kinds (the removal's) it has no handler for.
      InstallsModule.forRoot({ http: false }), RemovalModule.forRoot({ http: false, jobs: true }), HostsModule.forRoot({ http: false }), CodebasesModule.forRoot({ http: false }), SagaModule,
    ] as unknown as Type[]);
    ds = app.get(DataSource);
    // Each dispatcher runs nginx and php-fpm (on its private IP): the probe asks the shop through both.
    for (const [name, sshd, ip] of [['d1', readTestbed().sshd, '127.0.81.200'], ['d2', second, '127.0.82.200']] as const) {
      const row = testServer(join(base, name), `dispatch${name.slice(1)}.example.net`, ['dispatcher', 'handler'], sshd, { privateIp: ip });
      web[name] = await startDispatcherWeb(join(base, `web-${name}`), row.nginxConfDir, ip);
      servers[name] = await ds.getRepository(Server).save({ ...row, nginxPidFile: web[name]!.pidFile });
    }
    servers.db = await ds.getRepository(Server).save(testServer(join(base, 'db'), 'db1.example.net', ['database'], null, { dbOptionsFile: writeDbOptionsFile(base), privateIp: '127.0.0.1' }));
    // Loopback addresses: nginx -t binds every listen address, which must exist on the host.
    for (const [server, prefix] of [['d1', '127.0.81'], ['d2', '127.0.82']] as const) {
      for (let i = 1; i <= 4; i++) await ds.getRepository(ServerIp).save({ serverId: servers[server]!.id, ip: `${prefix}.${i}`, kind: 'dedicated', failoverGroup: null, activeServerId: null });
    }
    for (const [name, revision] of [['paid-1', repo.revisions[1]!], ['paid-broken', repo.broken]] as const) {
      for (const server of [servers.d1, servers.d2]) checkoutGroup(repo.path, server!.sharedCodeRoot, name, revision);
      groups[name] = await ds.getRepository(SharedCodeGroup).save({
        name, tier: 'paid', repoUrl: repo.path, revision, path: join(base, 'd1/srv/shared_codes', name), masterServerId: servers.d1!.id,
        installLimit: name === 'paid-1' ? 1 : 10, installCount: 0, pinned: false, manifest: JSON.parse(JSON.stringify(SAMPLE_MANIFEST)), state: 'ready',
      });
    }
  });
  afterAll(async () => {
    await app?.close();
    await catalog?.drop();
    await Promise.all([stopDispatcherWeb(web.d1), stopDispatcherWeb(web.d2)]);
    if (second) await stopSshd(second);
    rmSync(base, { recursive: true, force: true });
  });

  const order = (ref: string, hostname: string, serverId: number): CreateInstallDto =>
    ({ orderRef: ref, customerEmail: 'owner@example.com', license: 'paid', sites: [{ hostname }], serverId }) as CreateInstallDto;
  const tenantLogin = async (context: BuildContext) => {
    const { mariadb } = readTestbed();
    const password = decryptSecret(app.get<EngineConfig>(ENGINE_CONFIG).secretsKey, context.install.dbPasswordEnc);
    return mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: context.install.dbUser, password, database: context.install.dbName });
  };
  /** Prepared as the order hook does it: a code group slot, status building. */
  const prepared = async (dto: CreateInstallDto) => {
    const { install } = await app.get(PrepareService).prepare(dto);
    await ds.getRepository(Install).update({ id: install.id }, { status: 'building' });
    return { install: { ...install, status: 'building' as const } };
  };
  /** What the saga's release does for the vhosts once every step is compensated: the install failed, its dispatchers rebuilt without it. */
  const released = async (context: BuildContext) => {
    const rebuilds = app.get(NginxRebuilds);
    await ds.getRepository(Install).update({ id: context.install.id }, { status: 'failed' });
    await rebuilds.requestForInstall(context.install.id);
    for (const server of [servers.d1!, servers.d2!]) {
      const { wantedGeneration } = await rebuilds.configRow(server.id);
      await eventually(async () => (await rebuilds.configRow(server.id)).appliedGeneration >= wantedGeneration, 30_000, `the rebuild of ${server.hostname}`);
    }
  };
  const databaseExists = (context: BuildContext) => app.get(TenantDatabases).databaseExists(servers.db!, context.install.dbName);
  /** Everything an install could leave on a server or in the database server. */
  const leftovers = async (context: BuildContext) => {
    const found: string[] = [];
    for (const name of ['d1', 'd2']) {
      for (const dir of ['srv/home', 'srv/cron.d', 'srv/nginx/current/shops', 'srv/nginx/current/hosts']) {
        if (existsSync(join(base, name, dir))) found.push(...readdirSync(join(base, name, dir)).map((f) => `${name}:${dir}/${f}`));
      }
    }
    found.push(...(await ds.getRepository(FtpAccount).find({ where: { installId: context.install.id } })).map((a) => `ftp account ${a.userid}`));
    found.push(...(await ds.getRepository(StartupMount).find({ where: { installId: context.install.id } })).map((m) => `mount ${m.target}`));
    if (await databaseExists(context)) found.push(`database ${context.install.dbName}`);
    if (await app.get(TenantDatabases).userExists(servers.db!, context.install.dbUser)) found.push(`user ${context.install.dbUser}`);
    found.push(...(await ds.getRepository(DatabaseUpdate).find({ where: { installId: context.install.id } })).map((u) => `database_updates ${u.file}`));
    return found;
  };

  it('builds the home, tree, config, database, SQL updates, replica and crons; runs again unchanged; compensates to nothing', async () => {
    const steps = app.get(InstallBuildSteps);
    const { install } = await prepared(order('BUILD-1', 'www.stepbuild.example.com', servers.d1!.id));
    expect(install.sharedCodeGroupId).toBe(groups['paid-1']!.id);
    const context = await steps.loadContext(install.id, null);
    expect(context.replicas.map((s) => s.hostname)).toEqual(['dispatch2.example.net']);
    for (const step of steps.steps()) await step.execute(context, io);

    for (const server of ['d1', 'd2']) {
      const home = join(base, server, 'srv/home', install.fsName);
      const code = join(base, server, 'srv/shared_codes/paid-1/releases', repo.revisions[1]!);
      // Real only where needed; links relative, through the home's one link to its release (.code), resolving into this server's release.
      expect(readlinkSync(join(home, '.code'))).toBe(`../../shared_codes/paid-1/releases/${repo.revisions[1]!}`);
      expect(lstatSync(join(home, 'heavymetal')).isDirectory()).toBe(true);
      expect(lstatSync(join(home, 'heavymetal/lib')).isSymbolicLink()).toBe(true);
      expect(readlinkSync(join(home, 'heavymetal/lib'))).toBe('../.code/heavymetal/lib');
      expect(realpathSync(join(home, 'heavymetal/lib'))).toBe(join(code, 'heavymetal/lib'));
      expect(realpathSync(join(home, 'html/lib'))).toBe(join(code, 'heavymetal/lib'));
      expect(lstatSync(join(home, 'html/mas_assets/js')).isSymbolicLink()).toBe(true);
      // Copied, writable, excluded.
      expect(lstatSync(join(home, 'heavymetal/theme')).isDirectory()).toBe(true);
      expect(readFileSync(join(home, 'heavymetal/theme/default/layout.html'), 'utf8')).toContain('{content}');
      expect(lstatSync(join(home, 'html/mas_assets/theme/style.css')).isFile()).toBe(true);
      const tmp = statSync(join(home, 'heavymetal/tmp'));
      expect([tmp.mode & 0o7777, tmp.uid]).toEqual([0o770, Number(execFileSync('id', ['-u', 'www-data']).toString())]);
      expect(readdirSync(join(home, 'heavymetal/tmp'))).toEqual([]);
      expect(existsSync(join(home, 'install'))).toBe(false);
      // The config, rendered with this server's paths, read by PHP itself.
      const config = statSync(join(home, 'heavymetal/config.php'));
      expect([config.mode & 0o7777, config.uid, config.gid]).toEqual([0o640, 0, Number(execFileSync('id', ['-g', 'www-data']).toString())]);
      const values = JSON.parse(execFileSync('php', ['-r', 'echo json_encode(require $argv[1]);', join(home, 'heavymetal/config.php')]).toString());
      expect(values).toMatchObject({ db_name: install.dbName, db_user: install.dbUser, hostname: 'www.stepbuild.example.com', home, shared_code: join(home, '.code'), memcache_prefix: `${install.fsName}_` });
      expect(values.cookie_key).toMatch(/^[A-Za-z0-9]{32}$/);
      // Crons.
      expect(readFileSync(join(base, server, 'srv/cron.d', `shop-${install.fsName}`), 'utf8')).toContain(`*/5 * * * * www-data cd ${home} && php heavymetal/cron.php`);
    }
    // The vhost on each dispatcher, on the site's IPs of that server, accepted by nginx -t and live.
    for (const [server, ip] of [['d1', '127.0.81.'], ['d2', '127.0.82.']] as const) {
      // No rewrites, no certificate: its hostname's document root, in the server block it shares (alone here).
      const vhost = vhostOf(join(base, server, 'srv/nginx/current'), install.fsName)!;
      expect(vhost).toMatchObject({ shared: true, names: ['www.stepbuild.example.com'] });
      expect(vhost.text).toMatch(new RegExp(`listen ${ip.replace(/\./g, '\\.')}\\d+:80;`));
      expect(vhost.text).toContain('server_name www.stepbuild.example.com;');
      expect(vhost.text).toContain(`www.stepbuild.example.com ${vhost.upstream}:${join(base, server, 'srv/home', install.fsName, 'html')}; # groups/`);
      expect(readdirSync(join(base, server, 'srv/nginx/current/hosts'))).toEqual([`${install.fsName}.conf`]);
    }
    // The shop answers through both dispatchers' nginx and PHP, with a value from its own database.
    for (const ip of context.siteIps.map((i) => i.ip)) {
      expect(await fetchSite(ip, 'www.stepbuild.example.com', '/')).toMatchObject({ status: 200, body: 'shop www.stepbuild.example.com: Welcome; enjoy the shop\n' });
    }
    // FTP: the account (bcrypt), the mounts of the copied paths; copies keep their owner (root: read-only to PHP), writable paths are the web user's.
    const account = await ds.getRepository(FtpAccount).findOneByOrFail({ installId: install.id });
    expect(account).toMatchObject({ userid: install.fsName, homedir: join(base, 'd1/srv/home', install.fsName, 'ftp'), enabled: true });
    expect(account.passwd).toMatch(/^\$2[aby]\$10\$/);
    const mounts = await ds.getRepository(StartupMount).find({ where: { installId: install.id }, order: { id: 'ASC' } });
    expect(mounts.map((m) => m.target.split('/').pop())).toEqual(['heavymetal_theme', 'heavymetal_snippets', 'html_mas_assets_theme']);
    expect(statSync(join(base, 'd1/srv/home', install.fsName, 'heavymetal/theme/default/layout.html')).uid).toBe(0);
    expect(statSync(join(base, 'd1/srv/home', install.fsName, 'html/mas_assets/uploads')).uid).toBe(Number(execFileSync('id', ['-u', 'www-data']).toString()));
    // The home carries the marker of the install that made it.
    expect(readFileSync(join(base, 'd1/srv/home', install.fsName, '.shop-install'), 'utf8')).toBe(`shop-engine install ${install.id} (${install.fsName}, order BUILD-1)\n`);
    // The welcome mail (file transport here), with the FTP password that the hash verifies.
    const config = app.get<EngineConfig>(ENGINE_CONFIG);
    const mail = readFileSync(join(config.mailDir, readdirSync(config.mailDir).find((f) => f.includes(`install-${install.id}-welcome`))!), 'utf8');
    expect(mail).toContain('To: owner@example.com');
    expect(mail).toContain('Subject: Your shop www.stepbuild.example.com is ready');
    const ftpPassword = /^ {2}password: (\S+)/m.exec(mail)![1]!;
    expect(bcrypt.compareSync(ftpPassword, account.passwd)).toBe(true);

    const cookie = JSON.parse(execFileSync('php', ['-r', 'echo json_encode(require $argv[1]);', join(base, 'd1/srv/home', install.fsName, 'heavymetal/config.php')]).toString()).cookie_key;

    // The tenant database: tables of both updates and the install template, reachable with the rendered password.
    const connection = await tenantLogin(context);
    try {
      const [tables] = await connection.query('SHOW TABLES');
      expect((tables as Record<string, string>[]).map((t) => Object.values(t)[0]).sort()).toEqual(['orders', 'products', 'settings']);
      const [rows] = await connection.query("SELECT value FROM settings WHERE name = 'hostname'");
      expect(rows).toEqual([{ value: 'www.stepbuild.example.com' }]);
    } finally {
      await connection.end();
    }
    const applied = await ds.getRepository(DatabaseUpdate).find({ where: { installId: install.id }, order: { id: 'ASC' } });
    expect(applied.map((u) => u.file)).toEqual(['0001_base.sql', '0002_orders.sql', 'template:heavymetal/sql/templates/install.sql']);
    expect(applied[0]!.checksum).toMatch(/^[0-9a-f]{64}$/);

    // Every step again, as after a crash: same result, secrets unchanged, no update applied twice.
    const again = await steps.loadContext(install.id, null);
    for (const step of steps.steps()) await step.execute(again, io);
    expect(await ds.getRepository(DatabaseUpdate).count({ where: { installId: install.id } })).toBe(3);
    expect(JSON.parse(execFileSync('php', ['-r', 'echo json_encode(require $argv[1]);', join(base, 'd1/srv/home', install.fsName, 'heavymetal/config.php')]).toString()).cookie_key).toBe(cookie);

    // Values that changed later (a certificate installed: the site's scheme turns https) are rendered again on every server by install.config.
    const phpConfig = (server: string) => JSON.parse(execFileSync('php', ['-r', 'echo json_encode(require $argv[1]);', join(base, server, 'srv/home', install.fsName, 'heavymetal/config.php')]).toString());
    expect(phpConfig('d1')).toMatchObject({ url: 'http://www.stepbuild.example.com/', store_name: 'www.stepbuild.example.com', admin_email: 'owner@example.com', locale: 'en' });
    await ds.getRepository(Install).update({ id: install.id }, { status: 'live' });
    await ds.getRepository(InstallSite).update({ installId: install.id }, { sslPemPath: join(base, 'site.pem'), sslKeyPath: join(base, 'site.key') });
    const jobId = await app.get(InstallConfigJob).request(install.id);
    await eventually(async () => (await ds.getRepository(Job).findOneByOrFail({ id: jobId })).state === 'done', 30_000, 'the config job');
    for (const server of ['d1', 'd2']) expect(phpConfig(server)).toMatchObject({ url: 'https://www.stepbuild.example.com/', secure_url: 'https://www.stepbuild.example.com/', cookie_key: cookie });
    await ds.getRepository(InstallSite).update({ installId: install.id }, { sslPemPath: null, sslKeyPath: null });

    for (const step of [...steps.steps()].reverse()) await step.compensate(again, io);
    await released(again);
    expect(await leftovers(again)).toEqual([]);
    // Compensations tolerate "already undone".
    for (const step of [...steps.steps()].reverse()) await step.compensate(again, io);
  });

  it('stops at a failing SQL update naming the file, line and statement, and compensates to nothing', async () => {
    const steps = app.get(InstallBuildSteps);
    const { install } = await prepared(order('BUILD-2', 'broken.example.com', servers.d1!.id));
    expect(install.sharedCodeGroupId).toBe(groups['paid-broken']!.id);
    const context = await steps.loadContext(install.id, null);
    const done = [];
    let failure: unknown;
    for (const step of steps.steps()) {
      done.push(step);
      try {
        await step.execute(context, io);
      } catch (error) {
        failure = error;
        break;
      }
    }
    expect(failure).toBeInstanceOf(SqlStatementError);
    expect(failure).toMatchObject({ file: '0003_broken.sql', line: 2, statement: 'INSERT INTO no_such_table (id) VALUES (1)', server: 'db1.example.net' });
    expect(done.at(-1)!.name).toBe('sql-updates');
    for (const step of done.reverse()) await step.compensate(context, io);
    await released(context);
    expect(await leftovers(context)).toEqual([]);
  });
});
