import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource, In } from 'typeorm';
import { ApiTokensService } from '@app/auth';
import { AuditEvent, FtpAccount, Install, InstallBackup, InstallSite, InstallSiteIp, Job, SagaStep, Server, ServerIp, SharedCodeGroup, SiteName } from '@app/catalog';
import { buildSampleRepository, SAMPLE_MANIFEST, type SampleRepository } from '@app/codebases';
import { SiteDns } from '@app/dns';
import { BackupPurge, INSTALL_REMOVE, RemoveInstallJob, RemoveInstallService, type RemoveInstallPayload } from '@app/installs';
import { LeaseLostError, type JobContext } from '@app/queue';
import { SagaRunner } from '@app/saga';
import { NginxPipeline, NginxRebuilds, phpUserOf, PoolPipeline } from '@app/webserver';
import { startEngine, type RunningEngine } from '../../apps/engine/src/start-engine.js';
import { createTestCatalog, ownInstallIds, TEST_SECRETS_KEY, testEngineConfig, type TestCatalog } from '../support/catalog.js';
import { startHandlerFpm, stopHandlerFpm, type HandlerFpm } from '../support/handler-fpm.js';
import { startMountNamespace, stopMountNamespace, type MountNamespace } from '../support/mount-namespace.js';
import { startNginx, stopNginx, vhostOf } from '../support/nginx.js';
import { createZone, dig, powerDnsEnv, setRecords, startPowerDns, stopPowerDns, type TestPowerDns } from '../support/powerdns.js';
import { cleanEnv, runCli, spawnWorker, type WorkerProcess } from '../support/processes-engine.js';
import { eventually } from '../support/queue-context.js';
import { checkoutGroup, testServer } from '../support/server-roots.js';
import { startSshd, stopSshd } from '../support/sshd.js';
import { writeDbOptionsFile } from '../support/tenant-db-server.js';
import type { NginxServer, SshdServer } from '../support/testbed.js';
import { fetchSite, makeCert } from '../support/web-installs.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = async (res: Response): Promise<any> => res.json();

/**
 * Issue 17's "Remove an install" and "Reset FTP permissions", end to end:
 * two SSH dispatchers (each its own files behind one layout: a mount
 * namespace each) with nginx and engine-managed php-fpm, MariaDB, the API
 * in this process and the jobs in worker processes (killed with -9 in one
 * test). A live paid install is removed (the shop stops serving, a backup
 * with real files, a sweep that finds nothing left), a neighbour and
 * look-alikes stay, it is restored live with its data, its expired backup
 * purged, and its FTP tree put back after a chmod/chown.
 */
describe('remove an install, restore it, reset its FTP permissions (2 SSH dispatchers, nginx, php-fpm, MariaDB, worker processes)', () => {
  let catalog: TestCatalog;
  let engine: RunningEngine;
  let ds: DataSource;
  let token: string;
  let base: string;
  let repo: SampleRepository;
  let env: NodeJS.ProcessEnv;
  let dbOptions: string;
  let worker: WorkerProcess | null = null;
  let pdns: TestPowerDns;
  const sshd: Record<string, SshdServer> = {};
  const machines: Record<string, MountNamespace> = {};
  const nginx: Record<string, NginxServer> = {};
  const fpm: Record<string, HandlerFpm> = {};
  const servers: Record<string, Server> = {};
  const installs: Record<'shop' | 'neighbour', Install> = {} as never;
  const HOSTS = { d1: '127.0.118.3', d2: '127.0.118.4' } as const;
  const SITE_IPS = { d1: ['127.0.118.131', '127.0.118.132', '127.0.118.133'], d2: ['127.0.118.141', '127.0.118.142', '127.0.118.143'] } as const;
  const SHOP = 'www.remove.test';
  const NEIGHBOUR = 'www.neighbour.test';

  const call = (method: string, path: string, body?: unknown) =>
    fetch(`${engine.url}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const journal = async (jobId: number) =>
    (await ds.getRepository(SagaStep).find({ where: { jobId }, order: { stepIndex: 'ASC' } })).map((s) => `${s.stepName}:${s.state}${s.error ? ` (${s.error})` : ''}`).join(', ');
  const jobEnded = async (jobId: number, timeoutMs = 240_000) => {
    try {
      return await eventually(async () => {
        const job = await ds.getRepository(Job).findOneByOrFail({ id: jobId });
        return job.state === 'done' || job.state === 'dead' ? job : null;
      }, timeoutMs, `job ${jobId}`);
    } catch (error) {
      const job = await ds.getRepository(Job).findOneBy({ id: jobId });
      // The job's own last lines (a step's tries and their errors are there, not in the journal, until the step ends).
      const lines = ((await ds.query('SELECT created_at, level, line FROM job_logs WHERE job_id = ? ORDER BY id DESC LIMIT 30', [jobId])) as { created_at: Date; level: string; line: string }[])
        .reverse()
        .map((l) => `${new Date(l.created_at).toISOString()} ${l.level} ${l.line}`)
        .join('\n');
      throw new Error(`job ${jobId} (${job?.kind}, ${job?.state}): ${error instanceof Error ? error.message : String(error)}; last error: ${job?.lastError}; journal: ${await journal(jobId)}; its last lines:\n${lines}\nworker: ${worker?.output().slice(-3000)}`);
    }
  };
  const startWorker = async () => {
    worker = await spawnWorker(env);
  };
  const killWorker = async (signal: NodeJS.Signals) => {
    if (!worker) return;
    worker.child.kill(signal);
    await worker.exited;
    worker = null;
  };
  /** Admin SQL on the testbed's MariaDB (its option file, as the engine's database server). */
  const sql = (statement: string) => execFileSync('mariadb', [`--defaults-file=${dbOptions}`, '--batch', '--skip-column-names', '-e', statement], { encoding: 'utf8' });
  const tableOf = (db: string, suffix: string) => sql(`SELECT table_name FROM information_schema.tables WHERE table_schema = '${db}' AND table_name LIKE '%${suffix}'`).trim();
  const home = (server: 'd1' | 'd2', fsName: string) => join(base, server, 'srv/home', fsName);
  const answers = async (ip: string, hostname: string, text: string) => (await fetchSite(ip, hostname, '/').then((a) => a, () => ({ status: 0, body: '' }))).body.includes(text);
  const order = async (ref: string, hostname: string) => {
    const accepted = await json(await call('POST', '/v1/installs', { orderRef: ref, customerEmail: 'owner@example.com', license: 'paid', sites: [{ hostname }] }));
    expect(accepted).toMatchObject({ installId: expect.any(Number), jobId: expect.any(Number) });
    expect((await jobEnded(accepted.jobId)).state).toBe('done');
    return ds.getRepository(Install).findOneByOrFail({ id: accepted.installId });
  };
  const ipsOf = async (installId: number) => {
    const sites = await ds.getRepository(InstallSite).find({ where: { installId } });
    const held = sites.length ? await ds.getRepository(InstallSiteIp).find({ where: { installSiteId: In(sites.map((s) => s.id)) } }) : [];
    const ips = held.length ? await ds.getRepository(ServerIp).find({ where: { id: In(held.map((h) => h.serverIpId)) } }) : [];
    return ips.map((i) => i.ip).sort();
  };
  const removalEvent = async (installId: number) =>
    ds.getRepository(AuditEvent).findOne({ where: { targetType: 'install', targetId: String(installId), action: 'install.removed' }, order: { id: 'DESC' } });

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'install-removal-'));
    chmodSync(base, 0o755);
    catalog = await createTestCatalog('mariadb', 'install_removal');
    for (const dir of ['home', 'shared_codes', 'certs']) mkdirSync(join(base, 'common/srv', dir), { recursive: true });
    for (const name of Object.keys(HOSTS)) {
      const binds = ['home', 'shared_codes'].map((dir) => ({ source: join(base, name, 'srv', dir), target: join(base, 'common/srv', dir) }));
      for (const bind of binds) mkdirSync(bind.source, { recursive: true });
      machines[name] = await startMountNamespace(join(base, `ns-${name}.log`), binds);
    }
    for (const [name, host] of Object.entries(HOSTS)) sshd[name] = await startSshd(join(base, `sshd-${name}`), host, { mountNamespace: machines[name]!.pid });
    repo = await buildSampleRepository(join(base, 'repo'));
    // The company's DNS: PowerDNS with the shops' zones (a record of another name in the zone must stay).
    pdns = await startPowerDns({ address: '127.0.118.53' });
    for (const zone of ['remove.test', 'neighbour.test', 'failed.test']) await createZone(pdns, zone);
    await setRecords(pdns, 'remove.test', 'mail.remove.test', 'A', ['127.0.118.250']);
    // The API here; every job (builds, rebuilds, removals) in worker processes.
    engine = await startEngine(testEngineConfig(catalog.url, { ENGINE_ROLES: 'api', ...powerDnsEnv(pdns) }));
    ds = engine.app.get(DataSource);
    await ownInstallIds(ds, 121001);
    token = (await engine.app.get(ApiTokensService).issue('support-desk', ['admin', 'orders', 'support'], { actor: 'test', via: 'cli' })).token;
    dbOptions = writeDbOptionsFile(base);
    for (const name of ['d1', 'd2'] as const) {
      const row = testServer(join(base, name), `${name}.removal.test`, ['dispatcher', 'handler'], sshd[name]!, {
        privateIp: '127.0.0.1',
        homeRoot: join(base, 'common/srv/home'),
        sharedCodeRoot: join(base, 'common/srv/shared_codes'),
        // One certs root for both (not per machine): a site's certificate has one path on every dispatcher.
        certsRoot: join(base, 'common/srv/certs'),
      });
      const poolDir = join(base, name, 'srv/php-pools');
      nginx[name] = await startNginx(join(base, `nginx-${name}`), { include: [join(row.nginxConfDir, 'current/*.conf')], mountNamespace: machines[name]!.pid });
      fpm[name] = await startHandlerFpm(join(base, `fpm-${name}`), poolDir, { mountNamespace: machines[name]!.pid });
      servers[name] = await ds.getRepository(Server).save({ ...row, phpFpmPoolDir: poolDir, phpFpmPidFile: fpm[name]!.pidFile, nginxPidFile: join(nginx[name]!.prefix, 'nginx.pid') });
      for (const ip of SITE_IPS[name]) await ds.getRepository(ServerIp).save({ serverId: servers[name]!.id, ip, kind: 'dedicated', failoverGroup: null, activeServerId: null });
    }
    servers.db = await ds.getRepository(Server).save(testServer(join(base, 'db'), 'db.removal.test', ['database'], null, { dbOptionsFile: dbOptions, privateIp: '127.0.0.1' }));
    for (const server of ['d1', 'd2']) checkoutGroup(repo.path, join(base, server, 'srv/shared_codes'), 'paid-a', repo.revisions[1]!);
    await ds.getRepository(SharedCodeGroup).save({
      name: 'paid-a', tier: 'paid', repoUrl: repo.path, revision: repo.revisions[1]!, path: join(servers.d1!.sharedCodeRoot, 'paid-a'), masterServerId: servers.d1!.id,
      installLimit: 10, installCount: 0, pinned: false, manifest: JSON.parse(JSON.stringify(SAMPLE_MANIFEST)), state: 'ready', locked: false,
    } as SharedCodeGroup);
    env = cleanEnv({ CATALOG_URL: catalog.url, SECRETS_KEY: TEST_SECRETS_KEY, WORKER_POLL_MS: '100', VAR_DIR: join(base, 'var'), LOG_LEVEL: 'info', ALLOW_LOCAL_TRANSPORT: 'true', ...powerDnsEnv(pdns) });
    await startWorker();
    installs.shop = await order('RM-1', SHOP);
    installs.neighbour = await order('RM-2', NEIGHBOUR);
    // Their names published (as the sites' operations do).
    for (const install of Object.values(installs)) await engine.app.get(SiteDns).publish(install.id);
    // The shop's site gets a certificate on both dispatchers (one certs root), served over TLS.
    const cert = makeCert(join(base, 'made-certs'), 'shop', SHOP);
    const pem = join(base, 'common/srv/certs', `${SHOP}.pem`);
    const key = join(base, 'common/srv/certs', `${SHOP}.key`);
    copyFileSync(cert.pem, pem);
    copyFileSync(cert.key, key);
    chmodSync(key, 0o600);
    await ds.getRepository(InstallSite).update({ installId: installs.shop.id }, { sslPemPath: pem, sslKeyPath: key, certSource: 'upload' });
    await engine.app.get(NginxRebuilds).requestForInstall(installs.shop.id);
    const shopIps = await ipsOf(installs.shop.id);
    await eventually(async () => (await fetchSite(shopIps[0]!, SHOP, '/', { tls: true }).then((a) => a.status === 200, () => false)) || null, 60_000, 'the shop over TLS').catch(async (e: Error) => {
      throw new Error(`${e.message}: ${JSON.stringify(await ds.query('SELECT * FROM dispatcher_configs'))} ${JSON.stringify(await ds.query('SELECT * FROM web_quarantines'))} ${await fetchSite(shopIps[0]!, SHOP, '/', { tls: true }).then((a) => JSON.stringify(a), (x: Error) => x.message)}`);
    });
    // Data of its own: what the restore must bring back.
    const settings = tableOf(installs.shop.dbName, 'settings');
    sql(`UPDATE \`${installs.shop.dbName}\`.\`${settings}\` SET value = 'Welcome back: data kept' WHERE name = 'greeting'`);
  }, 420_000);

  afterAll(async () => {
    await killWorker('SIGKILL');
    await engine?.close();
    await catalog?.drop();
    await Promise.allSettled([...Object.values(nginx).map(stopNginx), ...Object.values(fpm).map(stopHandlerFpm), ...Object.values(sshd).map(stopSshd)]);
    await Promise.allSettled(Object.values(machines).map(stopMountNamespace));
    if (pdns) await stopPowerDns(pdns);
    for (const install of Object.values(installs)) execFileSync('sh', ['-c', `userdel --force ${phpUserOf(install)} 2>/dev/null; groupdel ${phpUserOf(install)} 2>/dev/null; true`]);
    try {
      sql(`DROP DATABASE IF EXISTS \`${installs.shop?.dbName}_old\`; DROP USER IF EXISTS '${installs.shop?.dbUser}'@'10.9.9.9'`);
    } catch {
      // the catalog's MariaDB may be gone already
    }
    if (!process.env.KEEP_TEST_DIRS) rmSync(base, { recursive: true, force: true });
  });

  it('both shops are live through both dispatchers, the shop over TLS too', async () => {
    for (const name of ['d1', 'd2'] as const) {
      const [shopIp, neighbourIp] = await Promise.all([ipsOf(installs.shop.id), ipsOf(installs.neighbour.id)]);
      expect(shopIp).toHaveLength(2);
      expect(neighbourIp).toHaveLength(2);
      void name;
    }
    for (const ip of await ipsOf(installs.shop.id)) expect(await answers(ip, SHOP, 'Welcome back: data kept')).toBe(true);
    for (const ip of await ipsOf(installs.neighbour.id)) expect(await answers(ip, NEIGHBOUR, 'Welcome; enjoy the shop')).toBe(true);
    expect(await dig(pdns, SHOP)).toEqual(await ipsOf(installs.shop.id));
    expect(await dig(pdns, NEIGHBOUR)).toEqual(await ipsOf(installs.neighbour.id));
  });

  it('refuses bad input (400), unknown installs (404) and installs it cannot remove (409), changing nothing; a dry run answers the plan', async () => {
    const snapshot = async () => ({
      statuses: (await ds.getRepository(Install).find({ order: { id: 'ASC' } })).map((i) => `${i.id}:${i.status}`),
      jobs: await ds.getRepository(Job).countBy({ kind: INSTALL_REMOVE.name }),
      backups: await ds.getRepository(InstallBackup).count(),
      names: await ds.getRepository(SiteName).count(),
      homes: [existsSync(home('d1', installs.shop.fsName)), existsSync(home('d2', installs.shop.fsName))],
    });
    const before = await snapshot();
    const status = async (method: string, path: string) => {
      const res = await call(method, path);
      return { path, status: res.status, code: (await json(res)).code };
    };
    for (const path of ['/v1/installs/abc', '/v1/installs/1.5', '/v1/installs/0', '/v1/installs/-3', `/v1/installs/${installs.shop.id}?dryRun=yes`, '/v1/installs/99999999999']) {
      expect(await status('DELETE', path)).toMatchObject({ path, status: 400 });
    }
    expect(await status('DELETE', '/v1/installs/999999')).toEqual({ path: '/v1/installs/999999', status: 404, code: 'NOT_FOUND' });
    for (const path of ['/v1/installs/abc/restore', '/v1/installs/abc/ftp/reset']) expect(await status('POST', path)).toMatchObject({ status: 400 });
    expect(await status('POST', '/v1/installs/999999/restore')).toMatchObject({ status: 404, code: 'NOT_FOUND' });
    expect(await status('POST', '/v1/installs/999999/ftp/reset')).toMatchObject({ status: 404, code: 'NOT_FOUND' });
    // A live install is not restored; one being built is not removed.
    expect(await status('POST', `/v1/installs/${installs.shop.id}/restore`)).toMatchObject({ status: 409, code: 'INSTALL_NOT_REMOVED' });
    await ds.getRepository(Install).update({ id: installs.neighbour.id }, { status: 'building' });
    try {
      expect(await status('DELETE', `/v1/installs/${installs.neighbour.id}`)).toMatchObject({ status: 409, code: 'INSTALL_NOT_REMOVABLE' });
      expect(await status('POST', `/v1/installs/${installs.neighbour.id}/ftp/reset`)).toMatchObject({ status: 409, code: 'INSTALL_NOT_LIVE' });
    } finally {
      await ds.getRepository(Install).update({ id: installs.neighbour.id }, { status: 'live' });
    }
    // Without the support scope: refused.
    const orders = (await engine.app.get(ApiTokensService).issue('storefront', ['orders'], { actor: 'test', via: 'cli' })).token;
    expect((await fetch(`${engine.url}/v1/installs/${installs.shop.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${orders}` } })).status).toBe(403);

    const dry = await call('DELETE', `/v1/installs/${installs.shop.id}?dryRun=true`);
    expect(dry.status).toBe(200);
    const plan = await json(dry);
    expect(plan).toMatchObject({ installId: installs.shop.id, status: 'live', dryRun: true, jobId: null, servers: ['d1.removal.test', 'd2.removal.test'], names: [SHOP], backup: { server: 'd1.removal.test', graceDays: 14 } });
    expect(plan.dns).toEqual([{ name: SHOP, zone: 'remove.test', managed: true, before: expect.arrayContaining([{ type: 'A', content: expect.stringMatching(/^127\.0\.118\./) }]), after: [] }]);
    expect(plan.steps.map((s: string) => s.split(':')[0])).toEqual(['offline', 'backup', 'crons', 'mounts', 'ftp', 'php', 'copies', 'home', 'database', 'dns', 'release', 'certificates', 'sweep']);
    expect(await snapshot()).toEqual(before);
  }, 120_000);

  it('removes the live paid install: offline, backup with real files, every trace gone, the sweep clean, look-alikes and the neighbour untouched', async () => {
    const shop = installs.shop;
    // Look-alikes that are not the shop's: a directory and a database named like it, an account of its name on another host.
    for (const server of ['d1', 'd2'] as const) {
      mkdirSync(join(home(server, `${shop.fsName}old`), 'html'), { recursive: true });
      writeFileSync(join(home(server, `${shop.fsName}old`), 'html/keep.txt'), 'not the shop\'s\n');
    }
    sql(`CREATE DATABASE \`${shop.dbName}_old\`; CREATE TABLE \`${shop.dbName}_old\`.keepme (id int); CREATE USER '${shop.dbUser}'@'10.9.9.9' IDENTIFIED BY 'another-password'`);
    const groupBefore = (await ds.getRepository(SharedCodeGroup).findOneByOrFail({ name: 'paid-a' })).installCount;
    const ips = await ipsOf(shop.id);

    const res = await call('DELETE', `/v1/installs/${shop.id}`);
    expect(res.status).toBe(202);
    const accepted = await json(res);
    expect(accepted).toMatchObject({ installId: shop.id, jobId: expect.any(Number), dryRun: false });
    expect((await ds.getRepository(Install).findOneByOrFail({ id: shop.id })).status).toBe('removing');
    // A second removal while the first runs: refused.
    expect((await call('DELETE', `/v1/installs/${shop.id}`)).status).toBe(409);
    const job = await jobEnded(accepted.jobId);
    const steps = await ds.getRepository(SagaStep).find({ where: { jobId: job.id }, order: { stepIndex: 'ASC' } });
    // eslint-disable-next-line no-console
    console.log(JSON.stringify({ remove_install_s: (job.finishedAt!.getTime() - job.createdAt.getTime()) / 1000, steps_ms: Object.fromEntries(steps.map((s) => [s.stepName, s.durationMs])) }));
    expect({ state: job.state, journal: await journal(job.id) }).toEqual({
      state: 'done',
      journal: ['offline', 'backup', 'crons', 'mounts', 'ftp', 'php', 'copies', 'home', 'database', 'dns', 'release', 'certificates', 'sweep'].map((s) => `${s}:done`).join(', '),
    });

    // Removed, its row and sites kept with their history.
    const removed = await ds.getRepository(Install).findOneByOrFail({ id: shop.id });
    expect(removed).toMatchObject({ status: 'removed', statusReason: null });
    expect(removed.removedAt).toBeInstanceOf(Date);
    expect(await ds.getRepository(InstallSite).countBy({ installId: shop.id })).toBe(1);
    expect(await ds.getRepository(SiteName).countBy({ installId: shop.id })).toBe(0);
    expect(await ipsOf(shop.id)).toEqual([]);
    expect(await ds.getRepository(FtpAccount).countBy({ installId: shop.id })).toBe(0);
    expect((await ds.getRepository(SharedCodeGroup).findOneByOrFail({ name: 'paid-a' })).installCount).toBe(groupBefore - 1);

    // The shop no longer answers on its IPs (over HTTP or TLS), the neighbour does.
    for (const ip of ips) {
      expect(await answers(ip, SHOP, 'Welcome')).toBe(false);
      expect(await fetchSite(ip, SHOP, '/', { tls: true }).then((a) => a.body.includes('Welcome'), () => false)).toBe(false);
    }
    for (const ip of await ipsOf(installs.neighbour.id)) expect(await answers(ip, NEIGHBOUR, 'Welcome; enjoy the shop')).toBe(true);

    // Nothing left on the servers.
    for (const server of ['d1', 'd2'] as const) {
      expect(existsSync(home(server, shop.fsName))).toBe(false);
      expect(existsSync(join(base, server, 'srv/cron.d', `shop-${shop.fsName}`))).toBe(false);
      expect(vhostOf(join(base, server, 'srv/nginx/current'), shop.fsName)).toBeNull();
      expect(existsSync(join(base, server, 'srv/php-pools/current', `${shop.fsName}.conf`))).toBe(false);
    }
    expect(() => execFileSync('getent', ['passwd', phpUserOf(shop)])).toThrow();
    expect(sql(`SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '${shop.dbName}'`).trim()).toBe('0');
    expect(sql(`SELECT Host FROM mysql.user WHERE User = '${shop.dbUser}'`).trim()).toBe('10.9.9.9');
    expect(existsSync(join(base, 'common/srv/certs', `${SHOP}.pem`))).toBe(false);
    // Its DNS records are gone (the real protocol); another name of its zone and the neighbour's stay.
    expect(await dig(pdns, SHOP)).toEqual([]);
    expect(await dig(pdns, 'mail.remove.test')).toEqual(['127.0.118.250']);
    expect(await dig(pdns, NEIGHBOUR)).toEqual(await ipsOf(installs.neighbour.id));
    // The look-alikes, the shared checkout and the neighbour's home stay.
    for (const server of ['d1', 'd2'] as const) {
      expect(existsSync(join(home(server, `${shop.fsName}old`), 'html/keep.txt'))).toBe(true);
      expect(existsSync(join(base, server, 'srv/shared_codes/paid-a/releases', repo.revisions[1]!, 'html/index.php'))).toBe(true);
      expect(existsSync(join(home(server, installs.neighbour.fsName), 'heavymetal/config.php'))).toBe(true);
    }
    expect(sql(`SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '${shop.dbName}_old'`).trim()).toBe('1');

    // The backup: its own directory on the master, real files.
    const backup = await ds.getRepository(InstallBackup).findOneByOrFail({ installId: shop.id });
    expect(backup).toMatchObject({ state: 'kept', serverId: servers.d1!.id, path: join(base, 'common/srv/home/.install-backups', `install-${shop.id}-${backup.id}`) });
    expect(Math.abs(backup.expiresAt.getTime() - Date.now() - 14 * 86_400_000)).toBeLessThan(10 * 60_000);
    expect(Number(backup.sizeBytes)).toBeGreaterThan(1000);
    const dir = join(base, 'd1/srv/home/.install-backups', `install-${shop.id}-${backup.id}`);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    const files = (backup.contents as { files: { name: string }[] }).files.map((f) => f.name).sort();
    const siteId = (await ds.getRepository(InstallSite).findOneByOrFail({ installId: shop.id })).id;
    expect(files).toEqual(['catalog.json', `cert-${siteId}.key`, `cert-${siteId}.pem`, 'database.sql.gz', 'home.tar.gz']);
    const listing = execFileSync('tar', ['-tzvf', join(dir, 'home.tar.gz')], { encoding: 'utf8' });
    expect(listing).toContain(`${shop.fsName}/heavymetal/config.php`);
    expect(listing).toContain(`${shop.fsName}/.shop-install`);
    expect(listing).toMatch(new RegExp(`${shop.fsName}/\\.code -> `));
    // The links are links: nothing of the shared checkout is in it.
    const entries = execFileSync('tar', ['-tzf', join(dir, 'home.tar.gz')], { encoding: 'utf8' }).split('\n').filter(Boolean);
    expect(entries.filter((e) => e.startsWith(`${shop.fsName}/.code/`) || e.startsWith(`${shop.fsName}/heavymetal/lib/`) || e.startsWith(`${shop.fsName}/heavymetal/sql/`))).toEqual([]);
    expect(listing).toMatch(new RegExp(`${shop.fsName}/heavymetal/lib -> \\.\\./\\.code/heavymetal/lib`));
    // The dump restores, with the shop's own data.
    sql('DROP DATABASE IF EXISTS removal_dump_check; CREATE DATABASE removal_dump_check');
    execFileSync('sh', ['-c', 'gzip -dc "$1" | mariadb --defaults-file="$2" removal_dump_check', 'sh', join(dir, 'database.sql.gz'), dbOptions]);
    expect(sql(`SELECT value FROM removal_dump_check.\`${tableOf('removal_dump_check', 'settings')}\` WHERE name = 'greeting'`).trim()).toBe('Welcome back: data kept');
    sql('DROP DATABASE removal_dump_check');

    // The sweep: in the audit event (actor, before, after) and the removal view.
    const event = await removalEvent(shop.id);
    expect(event).toMatchObject({ actor: 'token:support-desk', via: 'worker' });
    const details = event!.details as { before: { status: string }; after: { status: string; backup: { id: number } }; sweep: { checked: number; leftovers: unknown[]; items: { what: string; state: string; name: string }[] } };
    expect(details.before.status).toBe('live');
    expect(details.after).toMatchObject({ status: 'removed', backup: { id: backup.id } });
    expect(details.sweep.leftovers).toEqual([]);
    expect(details.sweep.checked).toBeGreaterThanOrEqual(15);
    expect(new Set(details.sweep.items.map((i) => i.what))).toEqual(new Set(['home', 'cron', 'vhost', 'pool', 'system-user', 'database', 'database-user', 'dns', 'certificate', 'catalog']));
    // The other account of that name is reported as not the install's, and left.
    expect(details.sweep.items).toContainEqual(expect.objectContaining({ what: 'database-user', name: `${shop.dbUser}@10.9.9.9`, state: 'foreign' }));
    expect(details.sweep.items).toContainEqual(expect.objectContaining({ what: 'dns', name: SHOP, state: 'absent' }));
    const view = await json(await call('GET', `/v1/installs/${shop.id}/removal`));
    expect(view).toMatchObject({ installId: shop.id, status: 'removed', sweep: { leftovers: [] }, backups: [{ id: backup.id, state: 'kept' }] });
    const requested = await ds.getRepository(AuditEvent).findOneByOrFail({ targetType: 'install', targetId: String(shop.id), action: 'install.remove' });
    expect(requested).toMatchObject({ actor: 'token:support-desk', via: 'api', details: expect.objectContaining({ before: { status: 'live' }, after: { status: 'removing' } }) });

    // Asked again: refused (removed), nothing changes.
    expect((await call('DELETE', `/v1/installs/${shop.id}`)).status).toBe(409);
  }, 300_000);

  it('restores the removed install from its backup: names re-claimed (409 while taken), IPs, home, database and certificate back, live with its data', async () => {
    const shop = installs.shop;
    // Its name claimed by another install meanwhile: refused, nothing changed.
    const neighbourSite = await ds.getRepository(InstallSite).findOneByOrFail({ installId: installs.neighbour.id });
    const squat = await ds.getRepository(SiteName).save({ installId: installs.neighbour.id, installSiteId: neighbourSite.id, name: SHOP });
    const refused = await call('POST', `/v1/installs/${shop.id}/restore`);
    expect({ status: refused.status, code: (await json(refused)).code }).toEqual({ status: 409, code: 'HOSTNAME_TAKEN' });
    expect((await ds.getRepository(Install).findOneByOrFail({ id: shop.id })).status).toBe('removed');
    await ds.getRepository(SiteName).delete({ id: squat.id });

    const dry = await call('POST', `/v1/installs/${shop.id}/restore?dryRun=true`);
    expect({ status: dry.status, body: await json(dry) }).toMatchObject({ status: 200, body: { dryRun: true, jobId: null, names: [SHOP] } });
    expect(await ds.getRepository(SiteName).countBy({ installId: shop.id })).toBe(0);

    const res = await call('POST', `/v1/installs/${shop.id}/restore`);
    expect(res.status).toBe(202);
    const job = await jobEnded((await json(res)).jobId);
    expect({ state: job.state, journal: await journal(job.id) }).toMatchObject({ state: 'done' });
    const restored = await ds.getRepository(Install).findOneByOrFail({ id: shop.id });
    expect(restored).toMatchObject({ status: 'live', removedAt: null });
    expect(await ds.getRepository(InstallBackup).findOneByOrFail({ installId: shop.id })).toMatchObject({ state: 'restored' });
    const ips = await ipsOf(shop.id);
    expect(ips).toHaveLength(2);
    // Its own data, through both dispatchers, and its certificate over TLS.
    for (const ip of ips) expect(await answers(ip, SHOP, 'Welcome back: data kept')).toBe(true);
    expect(existsSync(join(base, 'common/srv/certs', `${SHOP}.pem`))).toBe(true);
    expect(await fetchSite(ips[0]!, SHOP, '/', { tls: true }).then((a) => a.status, () => 0)).toBe(200);
    expect(await ds.getRepository(FtpAccount).countBy({ installId: shop.id })).toBe(1);
    expect(await dig(pdns, SHOP)).toEqual(ips);
  }, 300_000);

  it('resets the FTP permissions of a chmod-ed and chown-ed tree, reporting each change (a dry run changes nothing)', async () => {
    const shop = installs.shop;
    const d1 = (p: string) => join(home('d1', shop.fsName), p);
    /** The same path as the server names it (its home root, behind which d1 has its own files). */
    const at = (p: string) => join(base, 'common/srv/home', shop.fsName, p);
    const owner = (p: string) => execFileSync('stat', ['-c', '%U:%G %a', d1(p)], { encoding: 'utf8' }).trim();
    const before = { ftp: owner('ftp'), tmp: owner('heavymetal/tmp'), uploads: owner('html/mas_assets/uploads'), theme: owner('heavymetal/theme') };
    expect(before.tmp).toBe(`${phpUserOf(shop)}:www-data 2770`);
    chmodSync(d1('ftp'), 0o777);
    execFileSync('chown', ['nobody:nogroup', d1('heavymetal/tmp')]);
    chmodSync(d1('html/mas_assets/uploads'), 0o700);
    execFileSync('chown', ['-R', 'nobody:nogroup', d1('heavymetal/theme')]);
    const broken = { ftp: owner('ftp'), tmp: owner('heavymetal/tmp'), uploads: owner('html/mas_assets/uploads'), theme: owner('heavymetal/theme') };

    const dry = await call('POST', `/v1/installs/${shop.id}/ftp/reset?dryRun=true`);
    expect(dry.status).toBe(200);
    const plan = await json(dry);
    expect(plan).toMatchObject({ dryRun: true, jobId: null, server: 'd1.removal.test' });
    expect(plan.changes).toEqual(expect.arrayContaining([
      { path: at('ftp'), before: `${before.ftp.split(' ')[0]} 0777`, after: `${before.ftp.split(' ')[0]} 0755` },
      { path: at('heavymetal/tmp'), before: expect.stringMatching(/^nobody:nogroup \d{4}$/), after: `${phpUserOf(shop)}:www-data 2770` },
      { path: at('html/mas_assets/uploads'), before: `${phpUserOf(shop)}:www-data 0700`, after: `${phpUserOf(shop)}:www-data 2770` },
      { path: at('heavymetal/theme'), before: expect.stringMatching(/^nobody:nogroup /), after: expect.stringMatching(/^root:root /) },
    ]));
    expect(plan.changes.filter((c: { path: string }) => c.path.startsWith(at('heavymetal/theme/'))).length).toBeGreaterThan(1);
    expect({ ftp: owner('ftp'), tmp: owner('heavymetal/tmp'), uploads: owner('html/mas_assets/uploads'), theme: owner('heavymetal/theme') }).toEqual(broken);

    const res = await call('POST', `/v1/installs/${shop.id}/ftp/reset`);
    expect(res.status).toBe(200);
    const report = await json(res);
    expect(report).toMatchObject({ state: 'done', dryRun: false, jobId: expect.any(Number), mounts: expect.stringContaining('BindMounts') });
    expect(report.changes).toEqual(plan.changes);
    expect({ ftp: owner('ftp'), tmp: owner('heavymetal/tmp'), uploads: owner('html/mas_assets/uploads'), theme: owner('heavymetal/theme') }).toEqual(before);
    expect(execFileSync('find', [d1('heavymetal/theme'), '-user', 'nobody'], { encoding: 'utf8' })).toBe('');
    const event = await ds.getRepository(AuditEvent).findOneByOrFail({ targetType: 'install', targetId: String(shop.id), action: 'install.ftp.reset' });
    expect(event.details).toMatchObject({ jobId: report.jobId, before: expect.arrayContaining([{ path: at('heavymetal/tmp'), is: expect.stringMatching(/^nobody:nogroup /) }]) });
    // Again: nothing to change.
    expect((await json(await call('POST', `/v1/installs/${shop.id}/ftp/reset`))).changes).toEqual([]);
    for (const ip of await ipsOf(shop.id)) expect(await answers(ip, SHOP, 'Welcome back: data kept')).toBe(true);
  }, 180_000);

  it('resumes a removal whose worker is killed with -9 mid-way, to the same end (sweep clean)', async () => {
    const neighbour = installs.neighbour;
    const res = await call('DELETE', `/v1/installs/${neighbour.id}`);
    expect(res.status).toBe(202);
    const jobId = (await json(res)).jobId as number;
    // Killed once its backup is done (the deletes under way).
    await eventually(async () => (await ds.getRepository(SagaStep).findOne({ where: { jobId, stepName: 'backup', state: 'done' } })) ?? null, 120_000, 'the backup step');
    await killWorker('SIGKILL');
    const journalAtKill = await journal(jobId);
    // Its lease runs out (fast-forwarded); a new worker takes the removal over.
    await ds.query(`UPDATE jobs SET fence = fence + 1, lease_expires_at = '2000-01-01 00:00:00.000' WHERE state = 'running'`);
    await startWorker();
    const job = await jobEnded(jobId);
    expect({ state: job.state, journalAtKill: journalAtKill.length > 0, journal: await journal(jobId) }).toMatchObject({ state: 'done', journal: expect.stringContaining('sweep:done') });
    expect(job.attempts).toBeGreaterThanOrEqual(2);
    expect((await ds.getRepository(Install).findOneByOrFail({ id: neighbour.id })).status).toBe('removed');
    const event = await removalEvent(neighbour.id);
    expect((event!.details as { sweep: { leftovers: unknown[] } }).sweep.leftovers).toEqual([]);
    expect(await ds.getRepository(InstallBackup).countBy({ installId: neighbour.id, state: 'kept' })).toBe(1);
    for (const server of ['d1', 'd2'] as const) expect(existsSync(home(server, neighbour.fsName))).toBe(false);
    expect(await dig(pdns, NEIGHBOUR)).toEqual([]);
    expect(await dig(pdns, SHOP)).toEqual(await ipsOf(installs.shop.id));
    // The restored shop is untouched by its neighbour's removal.
    for (const ip of await ipsOf(installs.shop.id)) expect(await answers(ip, SHOP, 'Welcome back: data kept')).toBe(true);
  }, 300_000);

  it('purges an expired backup (its directory and the row purged); one not yet expired stays', async () => {
    const backup = await ds.getRepository(InstallBackup).findOneByOrFail({ installId: installs.neighbour.id, state: 'kept' });
    const dir = join(base, 'd1/srv/home/.install-backups', `install-${installs.neighbour.id}-${backup.id}`);
    expect(existsSync(join(dir, 'home.tar.gz'))).toBe(true);
    const purge = engine.app.get(BackupPurge);
    expect((await purge.sweep()).purged).toEqual([]);
    await ds.getRepository(InstallBackup).update({ id: backup.id }, { expiresAt: new Date(Date.now() - 60_000) });
    expect((await purge.sweep()).purged).toEqual([backup.id]);
    expect(existsSync(dir)).toBe(false);
    expect(await ds.getRepository(InstallBackup).findOneByOrFail({ id: backup.id })).toMatchObject({ state: 'purged' });
    expect(await ds.getRepository(AuditEvent).countBy({ action: 'install.backup.purged', targetId: String(installs.neighbour.id) })).toBe(1);
    // Nothing to restore from any more.
    const refused = await call('POST', `/v1/installs/${installs.neighbour.id}/restore`);
    expect({ status: refused.status, code: (await json(refused)).code }).toEqual({ status: 409, code: 'NO_BACKUP' });
    // The other backups' directories stay.
    expect(existsSync(join(base, 'd1/srv/home/.install-backups'))).toBe(true);
  }, 60_000);

  it('install:remove, install:restore and install:ftp-reset (the built CLI): dry runs, refusals with exit 1, nothing changed', async () => {
    const cli = cleanEnv({ CATALOG_URL: catalog.url, SECRETS_KEY: TEST_SECRETS_KEY, LOG_LEVEL: 'warn', ALLOW_LOCAL_TRANSPORT: 'true', ...powerDnsEnv(pdns) });
    const dry = await runCli(['install:remove', '--id', String(installs.shop.id), '--dry-run'], base, cli);
    expect({ code: dry.code, stdout: dry.stdout }).toEqual({ code: 0, stdout: expect.stringContaining('dry run: nothing changed') });
    expect(dry.stdout).toContain('backup: the home');
    const ftp = await runCli(['install:ftp-reset', '--id', String(installs.shop.id), '--dry-run'], base, cli);
    expect({ code: ftp.code, stdout: ftp.stdout }).toEqual({ code: 0, stdout: expect.stringContaining('dry run: 0 change(s)') });
    for (const args of [['install:remove', '--id', 'x'], ['install:remove'], ['install:remove', '--id', '999999'], ['install:restore', '--id', String(installs.shop.id)], ['install:ftp-reset', '--id', '0']]) {
      const r = await runCli(args, base, cli);
      expect({ args, code: r.code }).toEqual({ args, code: 1 });
    }
    expect((await runCli(['install:restore', '--id', String(installs.shop.id)], base, cli)).stderr).toContain('INSTALL_NOT_REMOVED');
    expect((await ds.getRepository(Install).findOneByOrFail({ id: installs.shop.id })).status).toBe('live');
  }, 120_000);

  it('undoes a removal whose backup cannot be taken: the shop serves again, nothing deleted', async () => {
    const shop = installs.shop;
    const backups = join(base, 'd1/srv/home/.install-backups');
    // Where the backup goes is not a directory: the backup step fails (after its retries).
    execFileSync('mv', [backups, `${backups}.moved`]);
    writeFileSync(backups, 'not a directory\n');
    try {
      const res = await call('DELETE', `/v1/installs/${shop.id}`);
      expect(res.status).toBe(202);
      const job = await jobEnded((await json(res)).jobId);
      expect({ state: job.state, journal: (await journal(job.id)).replace(/ \([^)]*\)/g, '') }).toEqual({ state: 'dead', journal: ['offline:compensated', 'backup:compensated', ...['crons', 'mounts', 'ftp', 'php', 'copies', 'home', 'database', 'dns', 'release', 'certificates', 'sweep'].map((n) => `${n}:pending`)].join(', ') });
    } finally {
      rmSync(backups);
      execFileSync('mv', [`${backups}.moved`, backups]);
    }
    expect((await ds.getRepository(Install).findOneByOrFail({ id: shop.id })).status).toBe('live');
    for (const ip of await ipsOf(shop.id)) expect(await answers(ip, SHOP, 'Welcome back: data kept')).toBe(true);
    for (const server of ['d1', 'd2'] as const) expect(existsSync(join(home(server, shop.fsName), 'heavymetal/config.php'))).toBe(true);
    expect(await dig(pdns, SHOP)).toEqual(await ipsOf(shop.id));
    expect(await ds.getRepository(InstallBackup).findOne({ where: { installId: shop.id }, order: { id: 'DESC' } })).toMatchObject({ state: 'failed' });
    expect(await ds.getRepository(AuditEvent).countBy({ targetType: 'install', targetId: String(shop.id), action: 'install.remove-failed' })).toBe(1);
  }, 180_000);

  it('resumes after a worker died right after the effect of each step in turn: the step runs again and the removal ends the same (sweep clean)', async () => {
    const third = await order('RM-4', 'www.third.test');
    await engine.app.get(SiteDns).publish(third.id);
    // No worker from here: this process plays the worker that dies, step after step.
    await killWorker('SIGTERM');
    const accepted = await engine.app.get(RemoveInstallService).remove(third.id, {}, { actor: 'test', via: 'cli' });
    const jobId = accepted.jobId!;
    // The rebuilds a worker would run: nginx and php-fpm without the install (it is `removing`).
    for (const name of ['d1', 'd2'] as const) {
      await engine.app.get(NginxPipeline).apply(servers[name]!);
      await engine.app.get(PoolPipeline).apply(servers[name]!);
    }
    const definition = engine.app.get(RemoveInstallJob).definition(jobId);
    const names = definition.steps.map((step) => step.name);
    for (const [k, name] of names.entries()) {
      // Claimed again (a new fence), as a worker takes over an expired lease.
      await ds.query(`UPDATE jobs SET state = 'running', fence = fence + 1, attempts = attempts + 1, lease_owner = 'doomed', lease_expires_at = '2100-01-01 00:00:00.000' WHERE id = ?`, [jobId]);
      const [{ fence, attempts }] = await ds.query('SELECT fence, attempts FROM jobs WHERE id = ?', [jobId]);
      const steps = definition.steps.map((step, i) => (i === k ? { ...step, execute: async (c: Parameters<typeof step.execute>[0], io: Parameters<typeof step.execute>[1]) => {
        await step.execute(c, io);
        throw new LeaseLostError(jobId);
      } } : step));
      const context: JobContext = { jobId, attempt: Number(attempts), maxAttempts: 100, fence: Number(fence), signal: new AbortController().signal, log: () => undefined, error: () => undefined };
      const payload = (await ds.getRepository(Job).findOneByOrFail({ id: jobId })).payload as unknown as RemoveInstallPayload;
      await expect(engine.app.get(SagaRunner).run({ ...definition, steps }, payload, context)).rejects.toBeInstanceOf(LeaseLostError);
      const row = await ds.getRepository(SagaStep).findOneByOrFail({ jobId, stepName: name });
      expect({ name, state: row.state }).toEqual({ name, state: 'running' });
    }
    // The last one (the sweep) is resumed by a real worker process (the attempts the simulated workers used given back: the queue buries a job past 8).
    await ds.query(`UPDATE jobs SET fence = fence + 1, attempts = 1, lease_expires_at = '2000-01-01 00:00:00.000' WHERE id = ?`, [jobId]);
    await startWorker();
    const job = await jobEnded(jobId);
    expect({ state: job.state, journal: await journal(jobId) }).toEqual({ state: 'done', journal: names.map((n) => `${n}:done`).join(', ') });
    // Every step ran twice: its effect done, then again after the "crash" (idempotent); the sweep found nothing.
    const rows = await ds.getRepository(SagaStep).find({ where: { jobId }, order: { stepIndex: 'ASC' } });
    expect(rows.map((r) => `${r.stepName}:${r.attempt}`)).toEqual(names.map((n) => `${n}:2`));
    expect((await removalEvent(third.id))!.details).toMatchObject({ sweep: { leftovers: [] } });
    expect(await ds.getRepository(InstallBackup).countBy({ installId: third.id, state: 'kept' })).toBe(1);
    expect(await dig(pdns, 'www.third.test')).toEqual([]);
    for (const ip of await ipsOf(installs.shop.id)) expect(await answers(ip, SHOP, 'Welcome back: data kept')).toBe(true);
  }, 300_000);

  it('refuses a restore whose code group has no room (409, dry run too), changing nothing', async () => {
    const third = await ds.getRepository(Install).findOneByOrFail({ orderRef: 'RM-4' });
    const group = await ds.getRepository(SharedCodeGroup).findOneByOrFail({ name: 'paid-a' });
    await ds.getRepository(SharedCodeGroup).update({ id: group.id }, { installLimit: group.installCount });
    try {
      for (const path of [`/v1/installs/${third.id}/restore?dryRun=true`, `/v1/installs/${third.id}/restore`]) {
        const res = await call('POST', path);
        const body = await json(res);
        expect({ path, status: res.status, code: body.code }).toEqual({ path, status: 409, code: 'CODE_GROUP_UNAVAILABLE' });
        expect(body.message).toContain('full');
      }
    } finally {
      await ds.getRepository(SharedCodeGroup).update({ id: group.id }, { installLimit: group.installLimit });
    }
    expect(await ds.getRepository(Install).findOneByOrFail({ id: third.id })).toMatchObject({ status: 'removed' });
    expect(await ds.getRepository(SiteName).countBy({ installId: third.id })).toBe(0);
    expect(await ipsOf(third.id)).toEqual([]);
    expect((await ds.getRepository(SharedCodeGroup).findOneByOrFail({ id: group.id })).installCount).toBe(group.installCount);
    expect(await ds.getRepository(InstallBackup).countBy({ installId: third.id, state: 'kept' })).toBe(1);
  }, 60_000);

  it('removes a failed install and the junk a crashed clean-up left (its marked home, its database), nothing else', async () => {
    // A group whose release's SQL update fails: the next order's build fails and is undone.
    for (const server of ['d1', 'd2']) checkoutGroup(repo.path, join(base, server, 'srv/shared_codes'), 'paid-broken', repo.broken);
    await ds.getRepository(SharedCodeGroup).update({ name: 'paid-a' }, { locked: true });
    await ds.getRepository(SharedCodeGroup).save({
      name: 'paid-broken', tier: 'paid', repoUrl: repo.path, revision: repo.broken, path: join(servers.d1!.sharedCodeRoot, 'paid-broken'), masterServerId: servers.d1!.id,
      installLimit: 10, installCount: 0, pinned: false, manifest: JSON.parse(JSON.stringify(SAMPLE_MANIFEST)), state: 'ready', locked: false,
    } as SharedCodeGroup);
    const accepted = await json(await call('POST', '/v1/installs', { orderRef: 'RM-3', customerEmail: 'owner@example.com', license: 'paid', sites: [{ hostname: 'www.failed.test' }] }));
    expect((await jobEnded(accepted.jobId)).state).toBe('dead');
    await ds.getRepository(SharedCodeGroup).update({ name: 'paid-a' }, { locked: false });
    const failed = await ds.getRepository(Install).findOneByOrFail({ id: accepted.installId });
    expect(failed.status).toBe('failed');
    // The seed's junk: a clean-up that died half-way left the home (with its marker) and the database (with its comment).
    mkdirSync(join(home('d1', failed.fsName), 'heavymetal'), { recursive: true });
    writeFileSync(join(home('d1', failed.fsName), '.shop-install'), `shop-engine install ${failed.id} (${failed.fsName}, order ${failed.orderRef})\n`);
    writeFileSync(join(home('d1', failed.fsName), 'heavymetal/half.txt'), 'junk\n');
    sql(`CREATE DATABASE \`${failed.dbName}\` COMMENT 'shop-engine install ${failed.id}'`);
    const res = await call('DELETE', `/v1/installs/${failed.id}`);
    expect(res.status).toBe(202);
    const job = await jobEnded((await json(res)).jobId);
    expect({ state: job.state, journal: await journal(job.id) }).toMatchObject({ state: 'done' });
    expect((await ds.getRepository(Install).findOneByOrFail({ id: failed.id })).status).toBe('removed');
    expect(existsSync(home('d1', failed.fsName))).toBe(false);
    expect(sql(`SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '${failed.dbName}'`).trim()).toBe('0');
    const event = await removalEvent(failed.id);
    expect(event!.details).toMatchObject({ before: { status: 'failed' }, sweep: { leftovers: [] } });
    // Its junk is in the backup, like any home.
    const backup = await ds.getRepository(InstallBackup).findOneByOrFail({ installId: failed.id });
    expect(execFileSync('tar', ['-tzf', join(base, 'd1/srv/home/.install-backups', `install-${failed.id}-${backup.id}`, 'home.tar.gz')], { encoding: 'utf8' })).toContain(`${failed.fsName}/heavymetal/half.txt`);
    // The others are as they were.
    for (const ip of await ipsOf(installs.shop.id)) expect(await answers(ip, SHOP, 'Welcome back: data kept')).toBe(true);
    expect((await ds.getRepository(SharedCodeGroup).findOneByOrFail({ name: 'paid-broken' })).installCount).toBe(0);
  }, 300_000);
});
