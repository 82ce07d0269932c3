import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { INestApplicationContext, Type } from '@nestjs/common';
import mysql from 'mysql2/promise';
import { DataSource } from 'typeorm';
import { FtpAccount, Install, Server, ServerIp, SharedCodeGroup, StartupMount } from '@app/catalog';
import { buildSampleRepository, CodebasesModule, SAMPLE_MANIFEST } from '@app/codebases';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { BindMounts, ftpReader, FtpServers, proftpdConfPath, proftpdLayoutOf } from '@app/ftp';
import { HostsModule } from '@app/hosts';
import { InstallBuildSteps, InstallsModule, PrepareService, RemovalModule, type CreateInstallDto } from '@app/installs';
import { SagaModule, type StepIO } from '@app/saga';
import { createTestCatalog, type TestCatalog } from '../support/catalog.js';
import { startDispatcherWeb, stopDispatcherWeb, type DispatcherWeb } from '../support/dispatcher-web.js';
import { freePort } from '../support/free-port.js';
import { startMountNamespace, stopMountNamespace, type MountNamespace } from '../support/mount-namespace.js';
import { isAlive, portAnswers, startServerProcess, stopProcessTree, waitUntil, type ServerProcess } from '../support/processes.js';
import { startQueueContext } from '../support/queue-context.js';
import { checkoutGroup, testServer } from '../support/server-roots.js';
import { startSshd, stopSshd } from '../support/sshd.js';
import { writeDbOptionsFile } from '../support/tenant-db-server.js';
import { readTestbed, type SshdServer } from '../support/testbed.js';
import { fetchSite } from '../support/web-installs.js';

/** A PNG's first bytes and a few more: the copied image. */
const LOGO = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]);

/**
 * The FTP service end to end: an install built by the build's steps on an
 * SSH dispatcher (its sshd in a mount namespace of its own, nginx and
 * php-fpm serving the shop), the BindMounts task mounting its copied paths
 * (a directory the manifest makes writable, and a copied image) into its
 * FTP tree, the FtpConfig task rendering ProFTPD's config from the catalog
 * (read-only reader made in the testbed MariaDB), and a real ProFTPD started
 * in the dispatcher's namespace with that config. curl is the FTP client.
 */
describe('FTP service (ProFTPD over the catalog, bind mounts, a built install)', () => {
  let base: string;
  let catalog: TestCatalog;
  let app: INestApplicationContext;
  let ds: DataSource;
  let ns: MountNamespace;
  let sshd: SshdServer;
  let web: DispatcherWeb;
  let d1: Server;
  let proftpd: ServerProcess | undefined;
  let ftpPort: number;
  let install: Install;
  let password: string;
  const IP = '127.0.123.20';
  const FTP_IP = '127.0.123.21';
  const HOST = 'www.ftp.example.com';
  const io: StepIO = { log: () => undefined, signal: new AbortController().signal };

  /** curl as the FTP client: its exit code (67: login refused) and output. */
  const curl = (args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile('curl', ['-sS', '--max-time', '20', ...args], { encoding: 'buffer', maxBuffer: 1 << 20 }, (error, stdout, stderr) =>
        resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout: stdout.toString('latin1'), stderr: stderr.toString() }),
      );
    });
  const url = (path = '/') => `ftp://${FTP_IP}:${ftpPort}${path}`;
  const as = (user: string, pw: string) => ['--user', `${user}:${pw}`];

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'ftp-service-'));
    chmodSync(base, 0o755);
    const repo = await buildSampleRepository(join(base, 'repo'));
    catalog = await createTestCatalog('mariadb', 'ftp_service');
    ftpPort = await freePort();
    const passive = await freePort();
    app = await startQueueContext(catalog.url, [], { concurrency: 2, pollMs: 20, reapEveryMs: 500 }, [
      // The removal module too: the worker refuses to start with job kinds (the removal's) it has no handler for.
      InstallsModule.forRoot({ http: false }), RemovalModule.forRoot({ http: false, jobs: true }), HostsModule.forRoot({ http: false }), CodebasesModule.forRoot({ http: false }), SagaModule,
    ] as unknown as Type[], { FTP_ENABLED: 'true', FTP_PORT: String(ftpPort), FTP_PASSIVE_PORTS: `${passive}-${passive + 1}`, FTP_ADDRESS: FTP_IP });
    ds = app.get(DataSource);
    // The dispatcher: its own mount namespace (what it mounts stays there), reached over SSH; nginx and php-fpm on its private IP.
    ns = await startMountNamespace(join(base, 'ns-d1.log'), []);
    sshd = await startSshd(join(base, 'sshd-d1'), '127.0.123.22', { mountNamespace: ns.pid });
    const row = testServer(join(base, 'd1'), 'ftp-d1.example.net', ['dispatcher', 'handler'], sshd, { privateIp: '127.0.123.23' });
    web = await startDispatcherWeb(join(base, 'web-d1'), row.nginxConfDir, '127.0.123.23');
    d1 = await ds.getRepository(Server).save({ ...row, nginxPidFile: web.pidFile });
    await ds.getRepository(Server).save(testServer(join(base, 'db'), 'ftp-db.example.net', ['database'], null, { dbOptionsFile: writeDbOptionsFile(base), privateIp: '127.0.0.1' }));
    await ds.getRepository(ServerIp).save({ serverId: d1.id, ip: IP, kind: 'dedicated', failoverGroup: null, activeServerId: null });
    // The release, with an image the manifest copies; the copied theme is writable (the customer's, through FTP).
    const groupDir = checkoutGroup(repo.path, d1.sharedCodeRoot, 'paid-ftp', repo.revisions[1]!);
    writeFileSync(join(groupDir, 'releases', repo.revisions[1]!, 'html/logo.png'), LOGO);
    const manifest = JSON.parse(JSON.stringify(SAMPLE_MANIFEST));
    manifest.copy.push('html/logo.png');
    manifest.writable.push('html/mas_assets/theme');
    await ds.getRepository(SharedCodeGroup).save({
      name: 'paid-ftp', tier: 'paid', repoUrl: repo.path, revision: repo.revisions[1]!, path: groupDir, masterServerId: d1.id,
      installLimit: 10, installCount: 0, pinned: false, manifest, state: 'ready',
    });
    // Built as the build job runs it: every step, the welcome mail last.
    const prepared = await app.get(PrepareService).prepare({ orderRef: 'FTP-1', customerEmail: 'owner@example.com', license: 'paid', sites: [{ hostname: HOST }], serverId: d1.id } as CreateInstallDto);
    await ds.getRepository(Install).update({ id: prepared.install.id }, { status: 'building' });
    const steps = app.get(InstallBuildSteps);
    const context = await steps.loadContext(prepared.install.id, null);
    for (const step of steps.steps()) await step.execute(context, io);
    await ds.getRepository(Install).update({ id: prepared.install.id }, { status: 'live' });
    install = await ds.getRepository(Install).findOneByOrFail({ id: prepared.install.id });
    const config = app.get<EngineConfig>(ENGINE_CONFIG);
    const mail = readFileSync(join(config.mailDir, readdirSync(config.mailDir).find((f) => f.includes(`install-${install.id}-welcome`))!), 'utf8');
    password = /^ {2}password: (\S+)/m.exec(mail)![1]!;
  }, 180_000);
  afterAll(async () => {
    if (proftpd) await stopProcessTree(proftpd.pid, 'proftpd');
    // The reader is an account of the shared testbed MariaDB, not of the dropped catalog database.
    const config = app?.get<EngineConfig>(ENGINE_CONFIG);
    if (config?.catalog.kind === 'mysql') await ds.query(`DROP USER IF EXISTS '${ftpReader(config.catalog.database, config.secretsKey.current).user}'@'127.0.0.1'`);
    await app?.close();
    await stopDispatcherWeb(web);
    if (sshd) await stopSshd(sshd);
    await stopMountNamespace(ns);
    await catalog?.drop();
    rmSync(base, { recursive: true, force: true });
  });

  const home = () => join(d1.homeRoot, install.fsName);

  it('the ftp step gives the copied image a file as its mount target, and BindMounts mounts the copies in the dispatcher\'s namespace', async () => {
    const rows = await ds.getRepository(StartupMount).find({ where: { installId: install.id }, order: { id: 'ASC' } });
    expect(rows.map((r) => r.target.slice(home().length + 1))).toEqual(['ftp/heavymetal_theme', 'ftp/heavymetal_snippets', 'ftp/html_mas_assets_theme', 'ftp/html_logo.png']);
    expect(statSync(join(home(), 'ftp/html_logo.png')).isFile()).toBe(true);
    expect(statSync(join(home(), 'ftp/heavymetal_theme')).isDirectory()).toBe(true);
    const [run] = await app.get(BindMounts).apply();
    expect(run).toMatchObject({ skipped: [], failed: [] });
    expect(run!.mounted.sort()).toEqual(rows.map((r) => r.target).sort());
  }, 60_000);

  it('FtpConfig renders ProFTPD\'s config (checked with proftpd -t) and makes the catalog\'s read-only reader', async () => {
    const [run] = await app.get(FtpServers).apply();
    expect(run).toEqual({ server: 'ftp-d1.example.net', written: true, proftpd: 'not running' });
    const confPath = proftpdConfPath(proftpdLayoutOf(d1.homeRoot));
    const conf = readFileSync(confPath, 'utf8');
    expect(statSync(confPath).mode & 0o777).toBe(0o600);
    expect(conf).toContain(`SQLUserWhereClause "enabled = 1 AND install_id IN (SELECT id FROM installs WHERE master_server_id = ${d1.id})"`);
    expect(conf).toContain(`Port ${ftpPort}`);
    // Unchanged: nothing written again.
    expect((await app.get(FtpServers).apply())[0]).toMatchObject({ written: false });

    // The reader reads the account columns and nothing else of the catalog.
    const { mariadb } = readTestbed();
    const config = app.get<EngineConfig>(ENGINE_CONFIG);
    const database = config.catalog.kind === 'mysql' ? config.catalog.database : '';
    const reader = ftpReader(database, config.secretsKey.current);
    const connection = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: reader.user, password: reader.password, database });
    try {
      const [rows] = await connection.query('SELECT userid, uid, homedir FROM ftp_accounts WHERE enabled = 1');
      expect(rows).toEqual([{ userid: install.fsName, uid: expect.any(Number), homedir: join(home(), 'ftp') }]);
      await expect(connection.query('SELECT db_password_enc FROM installs')).rejects.toThrow(/denied/);
      await expect(connection.query('UPDATE ftp_accounts SET enabled = 1')).rejects.toThrow(/denied/);
      await expect(connection.query('SELECT * FROM servers')).rejects.toThrow(/denied/);
    } finally {
      await connection.end();
    }

    // ProFTPD as production runs it, with that config, in the dispatcher's namespace (it must see the mounts).
    proftpd = await startServerProcess('proftpd', ['-n', '-c', confPath], join(base, 'proftpd.log'), { mountNamespace: ns.pid });
    await waitUntil('ProFTPD', () => portAnswers(ftpPort, FTP_IP), { timeoutMs: 10_000, server: proftpd });
  }, 60_000);

  it('a login with the welcome mail\'s password lists the FTP tree: the copied directories and the copied image as a file', async () => {
    const list = await curl([...as(install.fsName, password), url('/')]);
    expect(list.stderr).toBe('');
    const entries = new Map(list.stdout.trim().split('\n').map((l) => [l.trim().split(/\s+/).pop()!, l]));
    expect([...entries.keys()].sort()).toEqual(['heavymetal_snippets', 'heavymetal_theme', 'html_logo.png', 'html_mas_assets_theme']);
    expect(entries.get('html_logo.png')).toMatch(new RegExp(`^-r.* ${LOGO.length} `));
    expect(entries.get('heavymetal_theme')).toMatch(/^d/);
    const logo = await new Promise<Buffer>((resolve) => execFile('curl', ['-sS', ...as(install.fsName, password), url('/html_logo.png')], { encoding: 'buffer' }, (_e, out) => resolve(out)));
    expect(logo.equals(LOGO)).toBe(true);
    expect((await curl([...as(install.fsName, password), url('/heavymetal_theme/default/')])).stdout).toMatch(/layout\.html/);
  }, 60_000);

  it('an upload lands in the shop as the install\'s user and nginx serves it', async () => {
    const file = join(base, 'upload.css');
    writeFileSync(file, 'body { color: teal; } /* uploaded over FTP */\n');
    const up = await curl([...as(install.fsName, password), '-T', file, url('/html_mas_assets_theme/ftp-upload.css')]);
    expect(up).toMatchObject({ code: 0, stderr: '' });
    const landed = join(home(), 'html/mas_assets/theme/ftp-upload.css');
    const account = await ds.getRepository(FtpAccount).findOneByOrFail({ installId: install.id });
    expect(statSync(landed)).toMatchObject({ uid: account.uid, gid: account.gid });
    expect(await fetchSite(IP, HOST, '/mas_assets/theme/ftp-upload.css')).toMatchObject({ status: 200, body: 'body { color: teal; } /* uploaded over FTP */\n' });
    // Copies the manifest does not make writable stay read-only to the customer.
    expect((await curl([...as(install.fsName, password), '-T', file, url('/heavymetal_snippets/x.css')])).code).not.toBe(0);
  }, 60_000);

  it('the account is jailed in its FTP tree: .. never leaves it', async () => {
    const up = await curl([...as(install.fsName, password), url('/../../../')]);
    expect(up.stdout).toMatch(/heavymetal_theme/);
    expect(up.stdout).not.toMatch(/\.shop-install|\bftp\b|html\s*$/m);
    const quote = await curl([...as(install.fsName, password), '-v', '-Q', 'PWD', url('/')]);
    expect(quote.stderr).toMatch(/257 "\/" is the current directory/);
    expect((await curl([...as(install.fsName, password), url('/../../.shop-install')])).code).not.toBe(0);
  }, 60_000);

  it('a wrong password, an unknown user and a disabled account are refused (530)', async () => {
    expect((await curl([...as(install.fsName, `${password}x`), url('/')])).code).toBe(67);
    expect((await curl([...as('root', password), url('/')])).code).toBe(67);
    await ds.getRepository(FtpAccount).update({ installId: install.id }, { enabled: false });
    expect((await curl([...as(install.fsName, password), url('/')])).code).toBe(67);
    await ds.getRepository(FtpAccount).update({ installId: install.id }, { enabled: true });
    expect((await curl([...as(install.fsName, password), url('/')])).code).toBe(0);
  }, 60_000);

  it('a changed config is swapped in and the running ProFTPD reloaded; one proftpd -t refuses is never written', async () => {
    const servers = app.get(FtpServers);
    const confPath = proftpdConfPath(proftpdLayoutOf(d1.homeRoot));
    const before = readFileSync(confPath, 'utf8');
    const changed = before.replace('MaxInstances 64', 'MaxInstances 48');
    expect(await servers.applyServer(d1, changed)).toEqual({ server: 'ftp-d1.example.net', written: true, proftpd: 'reloaded' });
    expect(readFileSync(confPath, 'utf8')).toBe(changed);
    await expect(servers.applyServer(d1, `${changed}NoSuchDirective on\n`)).rejects.toThrow(/proftpd -t refused the new config/);
    expect(readFileSync(confPath, 'utf8')).toBe(changed);
    expect(isAlive(proftpd!.pid)).toBe(true);
    // Logins still work after the reload (the catalog's config back, reloaded again).
    expect((await servers.apply())[0]).toMatchObject({ written: true, proftpd: 'reloaded' });
    await waitUntil('ProFTPD after its reload', async () => (await curl([...as(install.fsName, password), url('/')])).code === 0, { timeoutMs: 10_000 });
  }, 60_000);
});
