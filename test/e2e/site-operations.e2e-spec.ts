import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource, In } from 'typeorm';
import { ApiTokensService } from '@app/auth';
import { AuditEvent, FtpAccount, Install, InstallServer, InstallSite, InstallSiteIp, Job, SagaStep, Server, ServerIp, SharedCodeGroup, SiteName, StartupMount } from '@app/catalog';
import { buildSampleRepository, SAMPLE_MANIFEST, type CodebaseManifest, type SampleRepository } from '@app/codebases';
import { INSTALL_DOWNGRADE, SITE_ADD, SITE_HOSTNAME, SITE_REMOVE } from '@app/sites';
import { phpUserOf } from '@app/webserver';
import { startEngine, type RunningEngine } from '../../apps/engine/src/start-engine.js';
import { createTestCatalog, ownInstallIds, TEST_SECRETS_KEY, testEngineConfig, type TestCatalog } from '../support/catalog.js';
import { startHandlerFpm, stopHandlerFpm, type HandlerFpm } from '../support/handler-fpm.js';
import { startMountNamespace, stopMountNamespace, type MountNamespace } from '../support/mount-namespace.js';
import { startNginx, stopNginx, vhostOf } from '../support/nginx.js';
import { createZone, dig, powerDnsEnv, startPowerDns, stopPowerDns, type TestPowerDns } from '../support/powerdns.js';
import { cleanEnv, runCli, spawnWorker, type WorkerProcess } from '../support/processes-engine.js';
import { eventually } from '../support/queue-context.js';
import { checkoutGroup, testServer } from '../support/server-roots.js';
import { startSshd, stopSshd } from '../support/sshd.js';
import { writeDbOptionsFile } from '../support/tenant-db-server.js';
import type { NginxServer, SshdServer } from '../support/testbed.js';
import { fetchSite, makeCert } from '../support/web-installs.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = async (res: Response): Promise<any> => res.json();

/** The sample manifest with the SQL templates of the site events (files written into each release below). */
const MANIFEST: CodebaseManifest = {
  ...SAMPLE_MANIFEST,
  sql: {
    ...SAMPLE_MANIFEST.sql!,
    templates: [
      ...SAMPLE_MANIFEST.sql!.templates!,
      { event: 'add_site', file: 'heavymetal/sql/templates/add_site.sql' },
      { event: 'hostname_change', file: 'heavymetal/sql/templates/hostname_change.sql' },
    ],
  },
} as CodebaseManifest;
const TEMPLATES = {
  'heavymetal/sql/templates/add_site.sql': "INSERT INTO settings (name, value) VALUES ({{site.hostname}}, {{site.url}});\n",
  'heavymetal/sql/templates/hostname_change.sql': "UPDATE settings SET value = {{site.hostname}} WHERE name = 'hostname' AND value = {{old.hostname}};\n",
};

/**
 * Issue 17's site operations and downgrade, end to end over HTTP: two SSH
 * dispatchers (a mount namespace each: their own homes behind one layout)
 * with nginx and engine-managed php-fpm, MariaDB, PowerDNS serving the
 * zone `sites.test` (answers read with dig), an API engine in this process
 * and worker engines as processes (one is killed with SIGKILL mid-saga). A
 * paid install is built live, gets a site, has a hostname changed, loses a
 * site and is downgraded to free; every endpoint refuses a hostile corpus
 * with nothing changed.
 */
describe('site operations and downgrade (2 SSH dispatchers, nginx, php-fpm, MariaDB, PowerDNS, worker processes)', () => {
  let catalog: TestCatalog;
  let engine: RunningEngine;
  let ds: DataSource;
  let token: string;
  let base: string;
  let repo: SampleRepository;
  let pdns: TestPowerDns;
  let env: NodeJS.ProcessEnv;
  const workers: WorkerProcess[] = [];
  const sshd: Record<string, SshdServer> = {};
  const machines: Record<string, MountNamespace> = {};
  const nginx: Record<string, NginxServer> = {};
  const fpm: Record<string, HandlerFpm> = {};
  const servers: Record<string, Server> = {};
  const ips: Record<string, ServerIp[]> = { d1: [], d2: [] };
  let install: Install;
  const HOSTS = { d1: '127.0.117.3', d2: '127.0.117.4' } as const;
  const ZONE = 'sites.test';
  const HOSTNAME = `www.${ZONE}`;

  const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
    fetch(`${engine.url}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...headers }, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
  const answer = async (method: string, path: string, body?: unknown) => {
    const res = await call(method, path, body);
    return { status: res.status, body: await json(res).catch(() => null) };
  };
  const journal = async (jobId: number) =>
    (await ds.getRepository(SagaStep).find({ where: { jobId }, order: { stepIndex: 'ASC' } })).map((s) => `${s.stepName}:${s.state}${s.error ? ` (${s.error})` : ''}`).join(', ');
  const jobEnded = async (jobId: number) => {
    try {
      return await eventually(async () => {
        const job = await ds.getRepository(Job).findOneByOrFail({ id: jobId });
        return job.state === 'done' || job.state === 'dead' ? job : null;
      }, 180_000, `job ${jobId}`);
    } catch (error) {
      const job = await ds.getRepository(Job).findOneBy({ id: jobId });
      throw new Error(`job ${jobId} (${job?.kind}, ${job?.state}): ${error instanceof Error ? error.message : String(error)}; last error: ${job?.lastError}; journal: ${await journal(jobId)}`);
    }
  };
  const sites = () => ds.getRepository(InstallSite).find({ where: { installId: install.id }, order: { id: 'ASC' } });
  const siteIps = async (siteId: number) => {
    const rows = await ds.getRepository(InstallSiteIp).find({ where: { installSiteId: siteId } });
    return (await ds.getRepository(ServerIp).find({ where: { id: In(rows.map((r) => r.serverIpId)) } })).map((i) => i.ip).sort();
  };
  const tenant = async (name: string) => ((await ds.query(`SELECT value FROM \`${install.dbName}\`.settings WHERE name = ?`, [name])) as { value: string }[]).map((r) => r.value);
  /** What the catalog holds of the install: compared before and after a refused request. */
  const state = async () => ({
    sites: (await sites()).map((s) => `${s.id}:${s.hostname}:${s.secureHostname}`),
    names: (await ds.getRepository(SiteName).find({ order: { id: 'ASC' } })).map((n) => `${n.installId}:${n.name}`),
    siteIps: (await ds.getRepository(InstallSiteIp).find({ order: { id: 'ASC' } })).map((r) => `${r.installSiteId}:${r.serverIpId}`),
    install: await ds.getRepository(Install).findOneByOrFail({ id: install.id }).then((i) => `${i.license}:${i.sharedCodeGroupId}:${i.status}`),
    jobs: await ds.getRepository(Job).countBy({ kind: In([SITE_ADD.name, SITE_REMOVE.name, SITE_HOSTNAME.name, INSTALL_DOWNGRADE.name]) }),
  });
  const group = async (name: string, tier: 'paid' | 'free', revision: string, on: readonly ('d1' | 'd2')[]) => {
    for (const server of on) {
      checkoutGroup(repo.path, join(base, server, 'srv/shared_codes'), name, revision);
      for (const [file, text] of Object.entries(TEMPLATES)) writeFileSync(join(base, server, 'srv/shared_codes', name, 'releases', revision, file), text);
    }
    return ds.getRepository(SharedCodeGroup).save({
      name, tier, repoUrl: repo.path, revision, path: join(servers.d1!.sharedCodeRoot, name), masterServerId: servers.d1!.id,
      installLimit: 10, installCount: 0, pinned: false, manifest: JSON.parse(JSON.stringify(MANIFEST)), state: 'ready', locked: false,
    } as SharedCodeGroup);
  };
  /** Replaces a SQL template of group `name`'s release on d1 (the master, where the engine reads it) for the duration of `run`. */
  const withTemplate = async <T>(name: string, file: keyof typeof TEMPLATES, text: string, run: () => Promise<T>): Promise<T> => {
    const path = join(base, 'd1/srv/shared_codes', name, 'releases', repo.revisions[1]!, file);
    writeFileSync(path, text);
    try {
      return await run();
    } finally {
      writeFileSync(path, TEMPLATES[file]);
    }
  };
  const startWorker = async () => {
    const worker = await spawnWorker(env);
    workers.push(worker);
    return worker;
  };

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'site-ops-'));
    chmodSync(base, 0o755);
    [catalog, pdns, repo] = await Promise.all([createTestCatalog('mariadb', 'site_ops'), startPowerDns({ address: '127.0.117.2' }), buildSampleRepository(join(base, 'repo'))]);
    await createZone(pdns, ZONE);
    for (const dir of ['home', 'shared_codes']) mkdirSync(join(base, 'common/srv', dir), { recursive: true });
    for (const name of Object.keys(HOSTS)) {
      const binds = ['home', 'shared_codes'].map((dir) => ({ source: join(base, name, 'srv', dir), target: join(base, 'common/srv', dir) }));
      for (const bind of binds) mkdirSync(bind.source, { recursive: true });
      machines[name] = await startMountNamespace(join(base, `ns-${name}.log`), binds);
    }
    for (const [name, host] of Object.entries(HOSTS)) sshd[name] = await startSshd(join(base, `sshd-${name}`), host, { mountNamespace: machines[name]!.pid });
    const dnsEnv = powerDnsEnv(pdns, 60);
    engine = await startEngine(testEngineConfig(catalog.url, { ENGINE_ROLES: 'api', ...dnsEnv }));
    ds = engine.app.get(DataSource);
    await ownInstallIds(ds, 120001);
    token = (await engine.app.get(ApiTokensService).issue('support-desk', ['admin', 'orders', 'support'], { actor: 'test', via: 'cli' })).token;
    for (const name of ['d1', 'd2'] as const) {
      const row = testServer(join(base, name), `${name}.sites.test`, ['dispatcher', 'handler'], sshd[name]!, {
        privateIp: '127.0.0.1',
        homeRoot: join(base, 'common/srv/home'),
        sharedCodeRoot: join(base, 'common/srv/shared_codes'),
      });
      const poolDir = join(base, name, 'srv/php-pools');
      nginx[name] = await startNginx(join(base, `nginx-${name}`), { include: [join(row.nginxConfDir, 'current/*.conf')], mountNamespace: machines[name]!.pid });
      fpm[name] = await startHandlerFpm(join(base, `fpm-${name}`), poolDir, { mountNamespace: machines[name]!.pid });
      servers[name] = await ds.getRepository(Server).save({ ...row, phpFpmPoolDir: poolDir, phpFpmPidFile: fpm[name]!.pidFile, nginxPidFile: join(nginx[name]!.prefix, 'nginx.pid') });
      const prefix = name === 'd1' ? 10 : 20;
      for (let i = 1; i <= 4; i++) ips[name]!.push(await ds.getRepository(ServerIp).save({ serverId: servers[name]!.id, ip: `127.0.117.${prefix + i}`, kind: 'dedicated', failoverGroup: null, activeServerId: null }));
    }
    servers.db = await ds.getRepository(Server).save(testServer(join(base, 'db'), 'db.sites.test', ['database'], null, { dbOptionsFile: writeDbOptionsFile(base), privateIp: '127.0.0.1' }));
    env = cleanEnv({ CATALOG_URL: catalog.url, SECRETS_KEY: TEST_SECRETS_KEY, WORKER_POLL_MS: '100', WORKER_CONCURRENCY: '3', VAR_DIR: join(base, 'var'), LOG_LEVEL: 'info', ALLOW_LOCAL_TRANSPORT: 'true', ...dnsEnv });
    await startWorker();
    await group('paid-a', 'paid', repo.revisions[1]!, ['d1', 'd2']);
    const order = await json(await call('POST', '/v1/installs', { orderRef: 'SITES-1', customerEmail: 'owner@example.com', license: 'paid', sites: [{ hostname: HOSTNAME }] }));
    expect(order).toMatchObject({ installId: expect.any(Number), jobId: expect.any(Number) });
    expect((await jobEnded(order.jobId)).state).toBe('done');
    install = await ds.getRepository(Install).findOneByOrFail({ id: order.installId });
    expect(install.status).toBe('live');
  }, 300_000);

  afterAll(async () => {
    for (const w of workers) {
      w.child.kill('SIGKILL');
      await w.exited;
    }
    await engine?.close();
    await catalog?.drop();
    await Promise.allSettled([...Object.values(nginx).map(stopNginx), ...Object.values(fpm).map(stopHandlerFpm), ...Object.values(sshd).map(stopSshd), ...(pdns ? [stopPowerDns(pdns)] : [])]);
    await Promise.allSettled(Object.values(machines).map(stopMountNamespace));
    if (install) execFileSync('sh', ['-c', `userdel --force ${phpUserOf(install)} 2>/dev/null; true`]);
    if (!process.env.KEEP_TEST_DIRS) rmSync(base, { recursive: true, force: true });
  });

  it('adds a site: names and IPs claimed, add_site SQL ran, DNS answers both dispatchers\' IPs, served through both dispatchers', async () => {
    const dry = await answer('POST', `/v1/installs/${install.id}/sites`, { hostname: `shop2.${ZONE}`, dryRun: true });
    expect(dry).toMatchObject({ status: 200, body: { dryRun: true, jobId: null, operation: 'site.add', plan: { reserveNames: [`shop2.${ZONE}`], sqlTemplates: ['heavymetal/sql/templates/add_site.sql'], configFiles: ['heavymetal/config.php'] } } });
    expect(dry.body.plan.allocateIps).toHaveLength(2);
    expect(dry.body.plan.dns).toEqual([expect.objectContaining({ name: `shop2.${ZONE}`, zone: ZONE, managed: true, before: [] })]);
    expect(await ds.getRepository(SiteName).countBy({ name: `shop2.${ZONE}` })).toBe(0);

    const res = await answer('POST', `/v1/installs/${install.id}/sites`, { hostname: `Shop2.${ZONE}.` });
    expect(res).toMatchObject({ status: 202, body: { dryRun: false, operation: 'site.add', siteId: expect.any(Number), jobId: expect.any(Number) } });
    const job = await jobEnded(res.body.jobId);
    expect({ state: job.state, journal: await journal(job.id) }).toEqual({ state: 'done', journal: 'reserve:done, sql:done, config:done, dns:done, webserver:done, probe:done' });
    const added = (await sites()).find((s) => s.hostname === `shop2.${ZONE}`)!;
    const addedIps = await siteIps(added.id);
    expect(addedIps).toHaveLength(2);
    for (const ip of addedIps) expect(await fetchSite(ip, `shop2.${ZONE}`, '/')).toMatchObject({ status: 200, body: expect.stringContaining('Welcome; enjoy the shop') });
    expect(await dig(pdns, `shop2.${ZONE}`)).toEqual(addedIps);
    expect(await tenant(`shop2.${ZONE}`)).toEqual([`http://shop2.${ZONE}/`]);
    const audit = await ds.getRepository(AuditEvent).find({ where: { targetId: String(install.id), action: In(['site.add', 'site.added']) }, order: { id: 'ASC' } });
    expect(audit.map((a) => [a.action, a.actor, a.via])).toEqual([['site.add', 'token:support-desk', 'api'], ['site.added', `job:${job.id}`, 'worker']]);
    expect(audit[0]!.details).toMatchObject({ before: null, after: { hostname: `shop2.${ZONE}` } });
  }, 240_000);

  it('undoes an add whose add_site SQL fails: the row, names and IPs released, no DNS record, nothing served for it', async () => {
    const before = await state();
    const res = await withTemplate('paid-a', 'heavymetal/sql/templates/add_site.sql', 'INSERT INTO no_such_table (id) VALUES (1);\n', async () => {
      const r = await answer('POST', `/v1/installs/${install.id}/sites`, { hostname: `broken.${ZONE}` });
      expect(r.status).toBe(202);
      return { r, job: await jobEnded(r.body.jobId) };
    });
    expect({ state: res.job.state, journal: await journal(res.job.id) }).toEqual({
      state: 'dead',
      journal: expect.stringMatching(/^reserve:compensated, sql:compensated \(.*no_such_table.*\), config:pending, dns:pending, webserver:pending, probe:pending$/),
    });
    expect({ ...(await state()), jobs: before.jobs }).toEqual(before);
    expect(await dig(pdns, `broken.${ZONE}`)).toEqual([]);
    for (const ip of ips.d1!.concat(ips.d2!).map((i) => i.ip)) await expect(fetchSite(ip, `broken.${ZONE}`, '/').then((a) => a.status, () => 'refused')).resolves.not.toBe(200);
    const audit = await ds.getRepository(AuditEvent).findOneByOrFail({ targetId: String(install.id), action: 'site.add-failed' });
    expect(audit.details).toMatchObject({ names: [`broken.${ZONE}`], failure: expect.stringContaining('no_such_table') });
  }, 240_000);

  it('refuses a hostile corpus on every endpoint with 4xx and nothing changed', async () => {
    const before = await state();
    const [first] = await sites();
    const other = await ds.getRepository(Install).save({ ...install, id: undefined, orderRef: 'OTHER-1', fsName: 'othershop', dbName: 'othershop', dbUser: 'othershop', status: 'live' } as unknown as Install);
    const otherSite = await ds.getRepository(InstallSite).save({ installId: other.id, hostname: `taken.${ZONE}`, secureHostname: null, relUrl: '/', secureRelUrl: '/', sslPemPath: null, sslKeyPath: null });
    await ds.getRepository(SiteName).save({ installId: other.id, installSiteId: otherSite.id, name: `taken.${ZONE}` });
    const baseline = await state();
    const cases: [string, string, unknown, number, string][] = [];
    const bad = ['', 'localhost', '-bad.sites.test', 'a..sites.test', 'xn--zz.sites.test', 'wwẃ.sites.test', 'shop.sites.test/evil', 'shop.sites.test;rm -rf', 'shop.sites.test\nHost: x', '1.2.3.4', 'ab--cd.sites.test', `${'a'.repeat(64)}.sites.test`, `${'a.'.repeat(130)}test`, 'ѕhop.sites.test', 'shop.sites.test\u0000'];
    for (const hostname of bad) {
      cases.push(['POST', `/v1/installs/${install.id}/sites`, { hostname }, 400, 'VALIDATION_FAILED']);
      cases.push(['PATCH', `/v1/installs/${install.id}/sites/${first!.id}`, { hostname }, 400, 'VALIDATION_FAILED']);
    }
    cases.push(
      ['POST', `/v1/installs/${install.id}/sites`, { hostname: 'ok.sites.test', relUrl: '../x' }, 400, 'VALIDATION_FAILED'],
      ['POST', `/v1/installs/${install.id}/sites`, { hostname: 'ok.sites.test', extra: 1 }, 400, 'VALIDATION_FAILED'],
      ['POST', `/v1/installs/${install.id}/sites`, '{"hostname":"ok.sites.test","__proto__":{"dryRun":true}}', 400, 'VALIDATION_FAILED'],
      ['POST', `/v1/installs/${install.id}/sites`, '{"hostname":', 400, ''],
      ['POST', `/v1/installs/${install.id}/sites`, { hostname: ['ok.sites.test'] }, 400, 'VALIDATION_FAILED'],
      ['POST', `/v1/installs/${install.id}/sites`, { hostname: 'ok.sites.test', dryRun: 'yes' }, 400, 'VALIDATION_FAILED'],
      ['POST', `/v1/installs/${install.id}/sites`, { hostname: `taken.${ZONE}` }, 409, 'HOSTNAME_TAKEN'],
      ['POST', `/v1/installs/${install.id}/sites`, { hostname: 'ok.sites.test', secureHostname: `taken.${ZONE}` }, 409, 'HOSTNAME_TAKEN'],
      ['POST', `/v1/installs/${install.id}/sites`, { hostname: HOSTNAME }, 409, 'HOSTNAME_TAKEN'],
      ['POST', '/v1/installs/999999/sites', { hostname: 'ok.sites.test' }, 404, 'NOT_FOUND'],
      ['POST', '/v1/installs/abc/sites', { hostname: 'ok.sites.test' }, 400, ''],
      ['PATCH', `/v1/installs/${install.id}/sites/${first!.id}`, { hostname: `taken.${ZONE}` }, 409, 'HOSTNAME_TAKEN'],
      ['PATCH', `/v1/installs/${install.id}/sites/${first!.id}`, { hostname: `shop2.${ZONE}` }, 409, 'HOSTNAME_TAKEN'],
      ['PATCH', `/v1/installs/${install.id}/sites/${first!.id}`, { hostname: HOSTNAME }, 409, 'HOSTNAME_UNCHANGED'],
      ['PATCH', `/v1/installs/${install.id}/sites/${first!.id}`, {}, 400, 'VALIDATION_FAILED'],
      ['PATCH', `/v1/installs/${install.id}/sites/${first!.id}`, { ips: [] }, 400, 'VALIDATION_FAILED'],
      ['PATCH', `/v1/installs/${install.id}/sites/${first!.id}`, { ips: ['1'] }, 400, 'VALIDATION_FAILED'],
      ['PATCH', `/v1/installs/${install.id}/sites/${first!.id}`, { ips: [999_999] }, 404, 'NOT_FOUND'],
      ['PATCH', `/v1/installs/${install.id}/sites/${first!.id}`, { ips: [ips.d1![3]!.id] }, 409, 'IPS_NOT_USABLE'],
      ['PATCH', `/v1/installs/${install.id}/sites/${otherSite.id}`, { hostname: 'ok.sites.test' }, 404, 'NOT_FOUND'],
      ['PATCH', `/v1/installs/${install.id}/sites/999999`, { hostname: 'ok.sites.test' }, 404, 'NOT_FOUND'],
      ['PATCH', `/v1/installs/999999/sites/${first!.id}`, { hostname: 'ok.sites.test' }, 404, 'NOT_FOUND'],
      ['DELETE', `/v1/installs/${install.id}/sites/999999`, undefined, 404, 'NOT_FOUND'],
      ['DELETE', `/v1/installs/${install.id}/sites/${otherSite.id}`, undefined, 404, 'NOT_FOUND'],
      ['DELETE', `/v1/installs/999999/sites/${first!.id}`, undefined, 404, 'NOT_FOUND'],
      ['DELETE', `/v1/installs/${install.id}/sites/${first!.id}?dryRun=maybe`, undefined, 400, 'VALIDATION_FAILED'],
      ['DELETE', `/v1/installs/${install.id}/sites/99999999999999999999`, undefined, 404, 'NOT_FOUND'],
      ['POST', '/v1/installs/999999/downgrade', {}, 404, 'NOT_FOUND'],
      ['POST', `/v1/installs/${install.id}/downgrade`, { dryRun: 1 }, 400, 'VALIDATION_FAILED'],
      ['POST', `/v1/installs/${install.id}/downgrade`, { force: true }, 400, 'VALIDATION_FAILED'],
      ['POST', `/v1/installs/${install.id}/downgrade`, {}, 409, 'NO_FREE_CODE_GROUP'],
    );
    const huge = JSON.stringify({ hostname: 'ok.sites.test', relUrl: `/${'a'.repeat(300_000)}/` });
    const got: unknown[] = [];
    const want: unknown[] = [];
    for (const [method, path, body, status, code] of cases) {
      const res = await answer(method, path, body);
      got.push({ method, path, body, status: res.status, code: code ? res.body?.code : '' });
      want.push({ method, path, body, status, code });
    }
    expect(got).toEqual(want);
    for (const path of [`/v1/installs/${install.id}/sites`, `/v1/installs/${install.id}/sites/${first!.id}`, `/v1/installs/${install.id}/downgrade`]) {
      const res = await call(path.endsWith('sites') || path.endsWith('downgrade') ? 'POST' : 'PATCH', path, huge);
      expect({ path, status: res.status }).toEqual({ path, status: 413 });
    }
    const noFree = await answer('POST', `/v1/installs/${install.id}/downgrade`, {});
    expect(noFree.body.details).toMatchObject({ revision: repo.revisions[1] });
    expect(noFree.body.message).toContain(repo.revisions[1]!.slice(0, 12));
    // A token without the support scope.
    const orders = (await engine.app.get(ApiTokensService).issue('shopfront', ['orders'], { actor: 'test', via: 'cli' })).token;
    const forbidden = await fetch(`${engine.url}/v1/installs/${install.id}/sites`, { method: 'POST', headers: { authorization: `Bearer ${orders}`, 'content-type': 'application/json' }, body: JSON.stringify({ hostname: 'ok.sites.test' }) });
    expect(forbidden.status).toBe(403);
    expect(await state()).toEqual(baseline);
    // The other install was only a holder of a name.
    await ds.getRepository(Install).delete({ id: other.id });
    expect(await state()).toEqual(before);
  }, 120_000);

  it('changes a hostname: new name served and in DNS, old name gone (404, no record, released), hostname_change SQL ran, config re-rendered, certificate not covering it dropped', async () => {
    const [first] = await sites();
    const firstIps = await siteIps(first!.id);
    // A certificate for the old name only, on both dispatchers: dropped by the change.
    for (const name of ['d1', 'd2'] as const) makeCert(servers[name]!.certsRoot, 'www', HOSTNAME);
    await ds.getRepository(InstallSite).update({ id: first!.id }, { sslPemPath: join(servers.d1!.certsRoot, 'www.pem'), sslKeyPath: join(servers.d1!.certsRoot, 'www.key') });
    // Published by the add above (the install's names are published together).
    expect(await dig(pdns, HOSTNAME)).toEqual(firstIps);
    const dry = await answer('PATCH', `/v1/installs/${install.id}/sites/${first!.id}`, { hostname: `renamed.${ZONE}`, dryRun: true });
    expect(dry).toMatchObject({ status: 200, body: { dryRun: true, plan: { reserveNames: [`renamed.${ZONE}`], releaseNames: [HOSTNAME], sqlTemplates: ['heavymetal/sql/templates/hostname_change.sql'] } } });
    expect(dry.body.plan.notes.join('\n')).toMatch(/does not cover renamed\.sites\.test: it is dropped .*serves http until a new certificate is installed/);
    expect(dry.body.plan.dns.map((d: { name: string; after: unknown[] }) => [d.name, d.after.length])).toEqual([[`renamed.${ZONE}`, 2], [HOSTNAME, 0]]);

    const started = Date.now();
    const res = await answer('PATCH', `/v1/installs/${install.id}/sites/${first!.id}`, { hostname: `renamed.${ZONE}` });
    expect(res).toMatchObject({ status: 202, body: { jobId: expect.any(Number) } });
    // Asked again while it runs: refused, not stacked.
    expect(await answer('POST', `/v1/installs/${install.id}/sites`, { hostname: `shop3.${ZONE}` })).toMatchObject({ status: 409, body: { code: 'OPERATION_RUNNING' } });
    const job = await jobEnded(res.body.jobId);
    // eslint-disable-next-line no-console
    console.log(JSON.stringify({ hostname_change_wall_ms: Date.now() - started }));
    expect({ state: job.state, journal: await journal(job.id) }).toEqual({ state: 'done', journal: 'reserve:done, switch:done, sql:done, config:done, dns:done, webserver:done, probe:done, release:done' });
    for (const ip of firstIps) {
      expect(await fetchSite(ip, `renamed.${ZONE}`, '/')).toMatchObject({ status: 200, body: `shop renamed.${ZONE}: Welcome; enjoy the shop\n` });
      expect(await fetchSite(ip, HOSTNAME, '/')).toMatchObject({ status: 404 });
    }
    expect(await dig(pdns, `renamed.${ZONE}`)).toEqual(firstIps);
    expect(await dig(pdns, HOSTNAME)).toEqual([]);
    expect(await tenant('hostname')).toEqual([`renamed.${ZONE}`]);
    expect(readFileSync(join(base, 'd2/srv/home', install.fsName, 'heavymetal/config.php'), 'utf8')).toContain(`'hostname' => 'renamed.${ZONE}'`);
    expect(await ds.getRepository(SiteName).findBy({ installId: install.id }).then((r) => r.map((n) => n.name).sort())).toEqual([`renamed.${ZONE}`, `shop2.${ZONE}`]);
    const changed = await ds.getRepository(InstallSite).findOneByOrFail({ id: first!.id });
    expect({ pem: changed.sslPemPath, key: changed.sslKeyPath }).toEqual({ pem: null, key: null });
    expect(existsSync(join(servers.d1!.certsRoot, 'www.pem'))).toBe(false);
    const audit = await ds.getRepository(AuditEvent).findOneByOrFail({ targetId: String(install.id), action: 'site.hostname' });
    expect(audit.details).toMatchObject({ before: { hostname: HOSTNAME }, after: { hostname: `renamed.${ZONE}`, certificate: null } });
  }, 240_000);

  it('resumes a hostname change whose worker is killed with SIGKILL mid-saga, to the same end', async () => {
    const [first] = await sites();
    const firstIps = await siteIps(first!.id);
    const res = await answer('PATCH', `/v1/installs/${install.id}/sites/${first!.id}`, { hostname: `www2.${ZONE}` });
    expect(res.status).toBe(202);
    const jobId = res.body.jobId as number;
    // Killed once the catalog switched and before the new name is proven.
    await eventually(async () => {
      const steps = await ds.getRepository(SagaStep).find({ where: { jobId } });
      return steps.some((s) => s.stepName === 'switch' && s.state === 'done') && !steps.some((s) => s.stepName === 'probe' && s.state === 'done');
    }, 60_000, 'the switch step done');
    for (const w of workers.splice(0)) {
      w.child.kill('SIGKILL');
      await w.exited;
    }
    const during = await ds.getRepository(Job).findOneByOrFail({ id: jobId });
    expect(during.state).toBe('running');
    // Its lease runs out (fast-forwarded); another worker takes it over.
    await ds.query(`UPDATE jobs SET lease_expires_at = '2000-01-01 00:00:00.000' WHERE id = ?`, [jobId]);
    await startWorker();
    const job = await jobEnded(jobId);
    expect({ state: job.state, journal: await journal(jobId) }).toEqual({ state: 'done', journal: 'reserve:done, switch:done, sql:done, config:done, dns:done, webserver:done, probe:done, release:done' });
    expect(job.attempts).toBeGreaterThanOrEqual(2);
    for (const ip of firstIps) {
      expect(await fetchSite(ip, `www2.${ZONE}`, '/')).toMatchObject({ status: 200, body: `shop www2.${ZONE}: Welcome; enjoy the shop\n` });
      expect(await fetchSite(ip, `renamed.${ZONE}`, '/')).toMatchObject({ status: 404 });
    }
    expect(await dig(pdns, `www2.${ZONE}`)).toEqual(firstIps);
    expect(await dig(pdns, `renamed.${ZONE}`)).toEqual([]);
    // The template ran once (recorded per job), whatever step the worker died in.
    expect(await tenant('hostname')).toEqual([`www2.${ZONE}`]);
  }, 300_000);

  it('undoes a hostname change whose hostname_change SQL fails: back to the old name everywhere (catalog, config, nginx, DNS), the new name not claimed', async () => {
    const [first] = await sites();
    const firstIps = await siteIps(first!.id);
    const before = await state();
    const config = readFileSync(join(base, 'd2/srv/home', install.fsName, 'heavymetal/config.php'), 'utf8');
    const res = await withTemplate('paid-a', 'heavymetal/sql/templates/hostname_change.sql', 'UPDATE no_such_table SET x = {{site.hostname}};\n', async () => {
      const r = await answer('PATCH', `/v1/installs/${install.id}/sites/${first!.id}`, { hostname: `never.${ZONE}` });
      expect(r.status).toBe(202);
      return { job: await jobEnded(r.body.jobId) };
    });
    expect({ state: res.job.state, journal: await journal(res.job.id) }).toEqual({
      state: 'dead',
      journal: expect.stringMatching(/^reserve:compensated, switch:compensated, sql:compensated \(.*no_such_table.*\), config:pending, dns:pending, webserver:pending, probe:pending, release:pending$/),
    });
    expect({ ...(await state()), jobs: before.jobs }).toEqual(before);
    expect(readFileSync(join(base, 'd2/srv/home', install.fsName, 'heavymetal/config.php'), 'utf8')).toBe(config);
    for (const ip of firstIps) {
      expect(await fetchSite(ip, first!.hostname, '/')).toMatchObject({ status: 200, body: `shop ${first!.hostname}: Welcome; enjoy the shop\n` });
      expect(await fetchSite(ip, `never.${ZONE}`, '/')).toMatchObject({ status: 404 });
    }
    expect(await dig(pdns, first!.hostname)).toEqual(firstIps);
    expect(await dig(pdns, `never.${ZONE}`)).toEqual([]);
    expect(await tenant('hostname')).toEqual([first!.hostname]);
  }, 240_000);

  it('moves a site to explicit IPs (one per dispatcher): the new ones serve it and are in DNS, the old ones are released', async () => {
    const [first] = await sites();
    const old = await siteIps(first!.id);
    const held = new Set((await ds.getRepository(InstallSiteIp).find()).map((r) => r.serverIpId));
    const target = [ips.d1!.find((i) => !held.has(i.id))!, ips.d2!.find((i) => !held.has(i.id))!];
    const dry = await answer('PATCH', `/v1/installs/${install.id}/sites/${first!.id}`, { ips: target.map((i) => i.id), dryRun: true });
    expect(dry).toMatchObject({ status: 200, body: { plan: { reserveNames: [], releaseNames: [], sqlTemplates: [] } } });
    expect(dry.body.plan.allocateIps.map((i: { ip: string }) => i.ip).sort()).toEqual(target.map((i) => i.ip).sort());
    expect(dry.body.plan.releaseIps.map((i: { ip: string }) => i.ip).sort()).toEqual(old);
    const res = await answer('PATCH', `/v1/installs/${install.id}/sites/${first!.id}`, { ips: target.map((i) => i.id) });
    expect(res.status).toBe(202);
    const job = await jobEnded(res.body.jobId);
    expect({ state: job.state, journal: await journal(job.id) }).toEqual({ state: 'done', journal: 'reserve:done, switch:done, sql:done, config:done, dns:done, webserver:done, probe:done, release:done' });
    expect(await siteIps(first!.id)).toEqual(target.map((i) => i.ip).sort());
    for (const ip of target) expect(await fetchSite(ip.ip, first!.hostname, '/')).toMatchObject({ status: 200, body: expect.stringContaining('Welcome; enjoy the shop') });
    for (const ip of old) await expect(fetchSite(ip, first!.hostname, '/').then((a) => a.status, () => 'refused')).resolves.not.toBe(200);
    expect(await dig(pdns, first!.hostname)).toEqual(target.map((i) => i.ip).sort());
  }, 240_000);

  it('removes a site: 404 after, DNS record gone, IPs and names released; the last site is refused', async () => {
    const all = await sites();
    const second = all.find((s) => s.hostname === `shop2.${ZONE}`)!;
    const secondIps = await siteIps(second.id);
    // Its certificate files (on d2's certs root): removed with it.
    const cert = makeCert(servers.d2!.certsRoot, 'shop2', `shop2.${ZONE}`);
    await ds.getRepository(InstallSite).update({ id: second.id }, { sslPemPath: cert.pem, sslKeyPath: cert.key });
    const dry = await answer('DELETE', `/v1/installs/${install.id}/sites/${second.id}?dryRun=true`);
    expect(dry).toMatchObject({ status: 200, body: { dryRun: true, plan: { releaseNames: [`shop2.${ZONE}`] } } });
    expect(dry.body.plan.releaseIps).toHaveLength(2);
    const res = await answer('DELETE', `/v1/installs/${install.id}/sites/${second.id}`);
    expect(res).toMatchObject({ status: 202, body: { jobId: expect.any(Number) } });
    const job = await jobEnded(res.body.jobId);
    expect({ state: job.state, journal: await journal(job.id) }).toEqual({ state: 'done', journal: 'detach:done, config:done, webserver:done, dns:done, certificate:done' });
    for (const ip of secondIps) await expect(fetchSite(ip, `shop2.${ZONE}`, '/').then((a) => a.status, () => 'refused')).resolves.not.toBe(200);
    expect(await dig(pdns, `shop2.${ZONE}`)).toEqual([]);
    expect(await ds.getRepository(SiteName).countBy({ name: `shop2.${ZONE}` })).toBe(0);
    expect({ pem: existsSync(cert.pem), key: existsSync(cert.key) }).toEqual({ pem: false, key: false });
    expect(dry.body.plan.notes.join('\n')).toContain(cert.pem);
    expect(await ds.getRepository(InstallSiteIp).countBy({ serverIpId: In(ips.d1!.concat(ips.d2!).filter((i) => secondIps.includes(i.ip)).map((i) => i.id)) })).toBe(0);
    const [last] = await sites();
    expect(await answer('DELETE', `/v1/installs/${install.id}/sites/${last!.id}`)).toMatchObject({ status: 409, body: { code: 'LAST_SITE' } });
    // Still served.
    for (const ip of await siteIps(last!.id)) expect(await fetchSite(ip, last!.hostname, '/')).toMatchObject({ status: 200 });
  }, 240_000);

  it('undoes a downgrade whose probe fails (a free group whose release lacks the front page): paid again on both servers, IPs, FTP, mounts, DNS, group as they were', async () => {
    const [site] = await sites();
    const before = { state: await state(), ips: await siteIps(site!.id), ftp: (await ds.getRepository(FtpAccount).findOneByOrFail({ installId: install.id })).enabled, mounts: await ds.getRepository(StartupMount).countBy({ installId: install.id }), servers: await ds.getRepository(InstallServer).countBy({ installId: install.id }) };
    const broken = await group('free-broken', 'free', repo.revisions[1]!, ['d1']);
    rmSync(join(base, 'd1/srv/shared_codes/free-broken/releases', repo.revisions[1]!, 'html/index.php'));
    const res = await answer('POST', `/v1/installs/${install.id}/downgrade`, {});
    expect(res.status).toBe(202);
    const job = await jobEnded(res.body.jobId);
    expect(job.state).toBe('dead');
    expect(await journal(job.id)).toMatch(/^check:compensated, serving:compensated, vhosts:compensated, license:compensated, config:compensated, slot:compensated, switch:compensated, ftp:compensated, dns:compensated, webserver:compensated, probe:compensated .*, copies:pending$/);
    expect({ state: { ...(await state()), jobs: before.state.jobs }, ips: await siteIps(site!.id), ftp: (await ds.getRepository(FtpAccount).findOneByOrFail({ installId: install.id })).enabled, mounts: await ds.getRepository(StartupMount).countBy({ installId: install.id }), servers: await ds.getRepository(InstallServer).countBy({ installId: install.id }) }).toEqual(before);
    expect((await ds.getRepository(SharedCodeGroup).findOneByOrFail({ id: broken.id })).installCount).toBe(0);
    expect(readlinkSync(join(base, 'd1/srv/home', install.fsName, '.code'))).toBe(join('../../shared_codes/paid-a/releases', repo.revisions[1]!));
    for (const ip of before.ips) expect(await fetchSite(ip, site!.hostname, '/')).toMatchObject({ status: 200, body: expect.stringContaining('Welcome; enjoy the shop') });
    expect(await dig(pdns, site!.hostname)).toEqual(before.ips);
    expect(existsSync(join(base, 'd2/srv/home', install.fsName, '.shop-install'))).toBe(true);
    const failed = await ds.getRepository(AuditEvent).findOneByOrFail({ targetId: String(install.id), action: 'install.downgrade-failed' });
    expect(failed.details).toMatchObject({ before: { license: 'paid' }, after: { license: 'paid' }, failure: expect.stringContaining('probe') });
    // Not chosen again.
    await ds.getRepository(SharedCodeGroup).update({ id: broken.id }, { locked: true });
  }, 300_000);

  it('downgrades the paid install to free, its worker killed with SIGKILL mid-saga: free group, one IP, one server (the copy on d2 removed), FTP off, mounts gone, DNS to the master only', async () => {
    const [site] = await sites();
    const before = await siteIps(site!.id);
    expect(before).toHaveLength(2);
    expect(existsSync(join(base, 'd2/srv/home', install.fsName, '.shop-install'))).toBe(true);
    expect(await ds.getRepository(StartupMount).countBy({ installId: install.id })).toBeGreaterThan(0);
    const free = await group('free-a', 'free', repo.revisions[1]!, ['d1']);
    const dry = await answer('POST', `/v1/installs/${install.id}/downgrade`, { dryRun: true });
    expect(dry).toMatchObject({ status: 200, body: { dryRun: true, operation: 'install.downgrade' } });
    expect(dry.body.plan.notes.join('\n')).toContain('free-a');
    expect(dry.body.plan.releaseIps).toHaveLength(1);
    const res = await answer('POST', `/v1/installs/${install.id}/downgrade`, {});
    expect(res).toMatchObject({ status: 202, body: { jobId: expect.any(Number) } });
    // Its worker killed with SIGKILL once the slot moved (links, license, IPs half way through the seven steps); another takes over.
    const jobId = res.body.jobId as number;
    await eventually(async () => {
      const steps = await ds.getRepository(SagaStep).find({ where: { jobId } });
      return steps.some((st) => st.stepName === 'slot' && st.state === 'done') && !steps.some((st) => st.stepName === 'probe' && st.state === 'done');
    }, 120_000, 'the slot step done');
    for (const w of workers.splice(0)) {
      w.child.kill('SIGKILL');
      await w.exited;
    }
    await ds.query(`UPDATE jobs SET lease_expires_at = '2000-01-01 00:00:00.000' WHERE id = ?`, [jobId]);
    await startWorker();
    const job = await jobEnded(jobId);
    expect(job.attempts).toBeGreaterThanOrEqual(2);
    expect({ state: job.state, journal: await journal(job.id) }).toEqual({
      state: 'done',
      journal: 'check:done, serving:done, vhosts:done, license:done, config:done, slot:done, switch:done, ftp:done, dns:done, webserver:done, probe:done, copies:done',
    });
    const now = await ds.getRepository(Install).findOneByOrFail({ id: install.id });
    expect({ license: now.license, group: now.sharedCodeGroupId }).toEqual({ license: 'free', group: free.id });
    expect((await ds.getRepository(InstallServer).findBy({ installId: install.id })).map((r) => r.serverId)).toEqual([servers.d1!.id]);
    const after = await siteIps(site!.id);
    expect(after).toHaveLength(1);
    expect(ips.d1!.map((i) => i.ip)).toContain(after[0]);
    expect(await dig(pdns, site!.hostname)).toEqual(after);
    expect((await ds.getRepository(FtpAccount).findOneByOrFail({ installId: install.id })).enabled).toBe(false);
    expect((await ds.getRepository(FtpAccount).findOneByOrFail({ installId: install.id })).userid).toBe(install.fsName);
    expect(await ds.getRepository(StartupMount).countBy({ installId: install.id })).toBe(0);
    expect(existsSync(join(base, 'd2/srv/home', install.fsName))).toBe(false);
    // d2's nginx and php-fpm no longer have it.
    expect(vhostOf(join(servers.d2!.nginxConfDir, 'current'), install.fsName)).toBeNull();
    await eventually(async () => !existsSync(join(servers.d2!.phpFpmPoolDir!, 'current', `${install.fsName}.conf`)), 30_000, 'the pool gone from d2');
    expect(existsSync(join(base, 'd1/srv/home', install.fsName, '.shop-install'))).toBe(true);
    // d1 and d2 are one machine here (one /etc/passwd): the master's PHP account stays.
    expect(execFileSync('getent', ['passwd', phpUserOf(install)], { encoding: 'utf8' })).toContain(phpUserOf(install));
    expect(await fetchSite(after[0]!, site!.hostname, '/')).toMatchObject({ status: 200, body: expect.stringContaining('Welcome; enjoy the shop') });
    const gone = before.find((ip) => ip !== after[0])!;
    await expect(fetchSite(gone, site!.hostname, '/').then((a) => a.status, () => 'refused')).resolves.not.toBe(200);
    expect(readlinkSync(join(base, 'd1/srv/home', install.fsName, '.code'))).toBe(join('../../shared_codes/free-a/releases', repo.revisions[1]!));
    const counts = Object.fromEntries((await ds.getRepository(SharedCodeGroup).find()).map((g) => [g.name, g.installCount]));
    expect(counts).toEqual({ 'paid-a': 0, 'free-broken': 0, 'free-a': 1 });
    expect(await answer('POST', `/v1/installs/${install.id}/downgrade`, {})).toMatchObject({ status: 409, body: { code: 'INSTALL_NOT_PAID' } });
    const audit = await ds.getRepository(AuditEvent).find({ where: { targetId: String(install.id), action: In(['install.downgrade', 'install.downgraded']) }, order: { id: 'ASC' } });
    // The failed attempt above, then this one.
    expect(audit.map((a) => a.action)).toEqual(['install.downgrade', 'install.downgrade', 'install.downgraded']);
    expect(audit[1]!.details).toMatchObject({ before: { license: 'paid' }, after: { license: 'free', servers: ['d1.sites.test'] } });
  }, 300_000);

  it('the snippets (built CLI): dry runs, refusals (exit 1, nothing changed), then site:add on the free install followed to its end (a shared IP)', async () => {
    const cli = cleanEnv({ CATALOG_URL: catalog.url, SECRETS_KEY: TEST_SECRETS_KEY, LOG_LEVEL: 'warn', ALLOW_LOCAL_TRANSPORT: 'true', ...powerDnsEnv(pdns) });
    // A free install's new site takes a shared IP: none in the pool yet.
    const exhausted = await runCli(['site:add', String(install.id), '--hostname', `cli.${ZONE}`, '--dry-run'], base, cli);
    expect({ code: exhausted.code, stderr: exhausted.stderr }).toEqual({ code: 1, stderr: expect.stringContaining('IP_POOL_EXHAUSTED') });
    const shared = await ds.getRepository(ServerIp).save({ serverId: servers.d1!.id, ip: '127.0.117.30', kind: 'shared', failoverGroup: null, activeServerId: null });
    const before = await state();
    const [site] = await sites();
    const dry = await runCli(['site:add', String(install.id), '--hostname', `cli.${ZONE}`, '--dry-run'], base, cli);
    expect({ code: dry.code, stderr: dry.stderr }).toEqual({ code: 0, stderr: '' });
    expect(dry.stdout).toContain('dry run: adding cli.sites.test');
    expect(dry.stdout).toContain('names claimed:   cli.sites.test');
    const taken = await runCli(['site:add', String(install.id), '--hostname', site!.hostname], base, cli);
    expect({ code: taken.code, stderr: taken.stderr }).toEqual({ code: 1, stderr: expect.stringContaining('HOSTNAME_TAKEN') });
    const rename = await runCli(['site:hostname', String(install.id), String(site!.id), '--hostname', `cli.${ZONE}`, '--dry-run'], base, cli);
    expect({ code: rename.code, stdout: rename.stdout }).toEqual({ code: 0, stdout: expect.stringContaining(`names released:  ${site!.hostname}`) });
    expect((await runCli(['site:remove', String(install.id), String(site!.id)], base, cli))).toMatchObject({ code: 1, stderr: expect.stringContaining('LAST_SITE') });
    expect((await runCli(['install:downgrade', String(install.id)], base, cli))).toMatchObject({ code: 1, stderr: expect.stringContaining('INSTALL_NOT_PAID') });
    expect((await runCli(['site:add', 'x', '--hostname', 'a.sites.test'], base, cli)).code).toBe(1);
    expect((await runCli(['site:add', String(install.id), '--hostname', 'bad..name'], base, cli))).toMatchObject({ code: 1, stderr: expect.stringContaining('VALIDATION_FAILED') });
    expect(await state()).toEqual(before);

    const added = await runCli(['site:add', String(install.id), '--hostname', `cli.${ZONE}`, '--timeout', '120'], base, cli);
    expect({ code: added.code, stderr: added.stderr }).toEqual({ code: 0, stderr: '' });
    expect(added.stdout).toMatch(/job \d+ done/);
    expect(added.stdout).toContain(`IPs allocated:   127.0.117.30 on d1.sites.test`);
    expect(await fetchSite(shared.ip, `cli.${ZONE}`, '/')).toMatchObject({ status: 200, body: expect.stringContaining('Welcome; enjoy the shop') });
    expect(await dig(pdns, `cli.${ZONE}`)).toEqual([shared.ip]);
    const audit = await ds.getRepository(AuditEvent).findOneByOrFail({ targetId: String(install.id), action: 'site.add', via: 'cli' });
    expect(audit.actor).toMatch(/^cli:/);
  }, 180_000);
});
