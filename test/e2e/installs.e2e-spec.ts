import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { DataSource } from 'typeorm';
import { ApiTokensService } from '@app/auth';
import { AuditEvent, Install, InstallSite, InstallSiteIp, Job, SagaStep, SharedCodeGroup, SiteName } from '@app/catalog';
import { buildSampleRepository, type SampleRepository } from '@app/codebases';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { decryptSecret } from '@app/installs';
import { startEngine, type RunningEngine } from '../../apps/engine/src/start-engine.js';
import { createTestCatalog, testEngineConfig, type TestCatalog } from '../support/catalog.js';
import { eventually } from '../support/queue-context.js';
import { startSmtp, type TestSmtp } from '../support/smtp.js';
import { startSshd, stopSshd } from '../support/sshd.js';
import { writeDbOptionsFile } from '../support/tenant-db-server.js';
import { readTestbed, type SshdServer } from '../support/testbed.js';
import { startDispatcherWeb, stopDispatcherWeb, type DispatcherWeb } from '../support/dispatcher-web.js';
import { fetchSite } from '../support/web-installs.js';
import { vhostOf } from '../support/nginx.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = async (res: Response): Promise<any> => res.json();

/**
 * Orders end to end: the order hook over HTTP, the build saga run by a real
 * worker on two SSH dispatchers, each with a running nginx and php-fpm (the
 * probe asks the shop through both), real MariaDB, mail to an SMTP server on
 * loopback.
 */
describe('installs end to end (MariaDB, two SSH dispatchers, SMTP)', () => {
  let catalog: TestCatalog;
  let engine: RunningEngine;
  let smtp: TestSmtp;
  let second: SshdServer;
  let repo: SampleRepository;
  let base: string;
  let admin: string;
  let orders: string;
  const ids: Record<string, number> = {};
  const web: Record<string, DispatcherWeb> = {};

  const call = (token: string, method: string, path: string, body?: unknown) =>
    fetch(`${engine.url}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const roots = (name: string) => {
    const dir = (r: string) => {
      const p = join(base, name, 'srv', r);
      mkdirSync(p, { recursive: true });
      return p;
    };
    return { homeRoot: dir('home'), sharedCodeRoot: dir('shared_codes'), nginxConfDir: dir('nginx'), cronDir: dir('cron.d'), certsRoot: dir('certs') };
  };
  const ssh = (sshd: SshdServer) => ({ transport: 'ssh', sshHost: sshd.host, sshPort: sshd.port, sshUser: sshd.user, sshKeyRef: sshd.privateKeyPath, sshHostKey: sshd.hostKeyFingerprint });
  const ds = () => engine.app.get(DataSource);
  const settled = (id: number) =>
    eventually(async () => {
      const view = await json(await call(admin, 'GET', `/v1/installs/${id}`));
      return view.status === 'live' || view.status === 'failed' ? view : null;
    }, 90_000, `install ${id} to settle`);

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'installs-e2e-'));
    chmodSync(base, 0o755);
    [catalog, second, repo, smtp] = await Promise.all([createTestCatalog('mariadb', 'installs_e2e'), startSshd(join(base, 'sshd-2'), '127.0.0.8'), buildSampleRepository(join(base, 'repo')), startSmtp()]);
    engine = await startEngine(testEngineConfig(catalog.url, { ENGINE_ROLES: 'api,worker', SMTP_URL: smtp.url }));
    const tokens = engine.app.get(ApiTokensService);
    admin = (await tokens.issue('ops', ['admin'], { actor: 'test', via: 'cli' })).token;
    orders = (await tokens.issue('storefront', ['orders'], { actor: 'test', via: 'cli' })).token;
    const add = async (name: string, body: object) => {
      const res = await call(admin, 'POST', '/v1/servers', body);
      expect(res.status).toBe(201);
      ids[name] = (await json(res)).id;
    };
    // Each dispatcher runs nginx (including its generations) and php-fpm on its private IP, as production does.
    const [web1, web2] = await Promise.all([startDispatcherWeb(join(base, 'web-d1'), roots('d1').nginxConfDir, '127.0.83.200'), startDispatcherWeb(join(base, 'web-d2'), roots('d2').nginxConfDir, '127.0.84.200')]);
    web.d1 = web1;
    web.d2 = web2;
    await add('d1', { hostname: 'dispatch1.example.net', roles: ['dispatcher', 'handler'], privateIp: '127.0.83.200', ...ssh(readTestbed().sshd), ...roots('d1'), nginxPidFile: web1.pidFile });
    await add('d2', { hostname: 'dispatch2.example.net', roles: ['dispatcher', 'handler'], privateIp: '127.0.84.200', ...ssh(second), ...roots('d2'), nginxPidFile: web2.pidFile });
    await add('db', { hostname: 'db1.example.net', roles: ['database'], privateIp: '127.0.0.1', transport: 'local', ...roots('db'), dbOptionsFile: writeDbOptionsFile(base) });
    // Loopback addresses: nginx -t binds every listen address.
    expect((await call(admin, 'POST', `/v1/servers/${ids.d1}/ips`, { ips: ['127.0.83.1', '127.0.83.2'], kind: 'dedicated' })).status).toBe(201);
    expect((await call(admin, 'POST', `/v1/servers/${ids.d2}/ips`, { ips: ['127.0.84.1', '127.0.84.2'], kind: 'dedicated' })).status).toBe(201);
    expect((await call(admin, 'POST', `/v1/servers/${ids.d1}/ips`, { ips: ['127.0.83.100'], kind: 'shared' })).status).toBe(201);
    for (const [name, tier, revision] of [['paid-1', 'paid', repo.revisions[1]], ['free-broken', 'free', repo.broken]] as const) {
      const res = await json(await call(admin, 'POST', '/v1/code-groups', { name, tier, repoUrl: repo.path, revision, masterServerId: ids.d1, installLimit: 5 }));
      ids[name] = res.group.id;
    }
  });
  afterAll(async () => {
    await engine?.close();
    await catalog?.drop();
    await smtp?.stop();
    await Promise.all([stopDispatcherWeb(web.d1), stopDispatcherWeb(web.d2)]);
    if (second) await stopSshd(second);
    rmSync(base, { recursive: true, force: true });
  });

  it('provisions a paid install on both dispatchers from one order, idempotently', async () => {
    const order = {
      orderRef: 'ORD-1001', customerEmail: 'owner@shop.example.com', license: 'paid', sites: [{ hostname: 'www.bio-ex.co.uk', secureHostname: 'secure.bio-ex.co.uk' }],
      shop: { storeName: `Bob's "Bikes" \\ Ünïcode`, adminEmail: 'Admin@Bio-Ex.co.uk', locale: 'en_GB' },
    };
    const [first, repeat] = await Promise.all([call(orders, 'POST', '/v1/installs', order), call(orders, 'POST', '/v1/installs', order)]);
    const answers = [{ status: first.status, body: await json(first) }, { status: repeat.status, body: await json(repeat) }];
    expect(answers.map((a) => a.status).sort()).toEqual([200, 202]);
    expect(answers[0]!.body).toEqual(answers[1]!.body);
    const { installId, jobId, statusUrl } = answers[0]!.body;
    expect(statusUrl).toBe(`/v1/installs/${installId}`);
    expect(jobId).toEqual(expect.any(Number));

    const view = await settled(installId);
    expect(view).toMatchObject({ status: 'live', codeGroup: 'paid-1', master: 'dispatch1.example.net', dbServer: 'db1.example.net', jobId });
    expect(view.steps.map((s: { name: string; state: string }) => `${s.name}:${s.state}`)).toEqual(
      ['php-user', 'home', 'tree', 'config', 'database', 'sql-updates', 'sync', 'crons', 'ftp', 'pools', 'webserver', 'probe', 'mail'].map((n) => `${n}:done`),
    );
    // Live means the shop answers: its front page, a value read from its own database, through each dispatcher's nginx and PHP.
    for (const ip of view.sites[0].ips.map((i: { ip: string }) => i.ip)) {
      expect(await fetchSite(ip, 'www.bio-ex.co.uk', '/')).toMatchObject({ status: 200, body: 'shop www.bio-ex.co.uk: Welcome; enjoy the shop\n' });
      expect(await fetchSite(ip, 'secure.bio-ex.co.uk', '/')).toMatchObject({ status: 200 });
    }
    const probe = await ds().getRepository(SagaStep).findOneByOrFail({ jobId, stepName: 'probe' });
    expect(probe.output).toMatch(/www\.bio-ex\.co\.uk via dispatch1\.example\.net .*HTTP 200 from PHP/);
    expect(probe.output).toMatch(/www\.bio-ex\.co\.uk via dispatch2\.example\.net .*HTTP 200 from PHP/);
    expect(view.servers).toEqual([
      { hostname: 'dispatch1.example.net', role: 'master', weight: 1 },
      { hostname: 'dispatch2.example.net', role: 'replica', weight: 1 },
    ]);
    expect(view.sites[0].ips.map((i: { server: string }) => i.server).sort()).toEqual(['dispatch1.example.net', 'dispatch2.example.net']);

    for (const server of ['d1', 'd2']) {
      const home = join(base, server, 'srv/home', view.fsName);
      expect(lstatSync(join(home, 'heavymetal/lib')).isSymbolicLink()).toBe(true);
      const config = readFileSync(join(home, 'heavymetal/config.php'), 'utf8');
      expect(config).toContain(`'db_name' => '${view.dbName}'`);
      // The order's values, escaped for PHP; the site's scheme (no certificate: http).
      expect(config).toContain(`'store_name' => 'Bob\\'s "Bikes" \\\\ Ünïcode',`);
      expect(config).toContain(`'admin_email' => 'admin@bio-ex.co.uk',`);
      expect(config).toContain(`'locale' => 'en_GB',`);
      expect(config).toContain(`'url' => 'http://www.bio-ex.co.uk/',`);
      expect(config).toContain(`'secure_url' => 'http://secure.bio-ex.co.uk/',`);
      expect(config).toMatch(/'encryption_key' => '[A-Za-z0-9!#%+\-.:=?@^_~]{1024}',/);
      expect(existsSync(join(base, server, 'srv/cron.d', `shop-${view.fsName}`))).toBe(true);
      // Live: in the generation the dispatcher's nginx runs (a welcome mail is sent only then).
      expect(vhostOf(join(base, server, 'srv/nginx/current'), view.fsName)?.names).toEqual(['www.bio-ex.co.uk', 'secure.bio-ex.co.uk']);
    }
    const install = await ds().getRepository(Install).findOneByOrFail({ id: installId });
    const { mariadb } = readTestbed();
    const password = decryptSecret(engine.app.get<EngineConfig>(ENGINE_CONFIG).secretsKey, install.dbPasswordEnc);
    const db = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: install.dbUser, password, database: install.dbName });
    try {
      const [rows] = await db.query("SELECT value FROM settings WHERE name = 'orders'");
      expect(rows).toEqual([{ value: 'enabled' }]);
      // The SQL template saw the order's store name, escaped for SQL.
      const [names] = await db.query("SELECT value FROM settings WHERE name = 'store_name'");
      expect(names).toEqual([{ value: order.shop.storeName }]);
    } finally {
      await db.end();
    }
    const mail = smtp.received.find((m) => m.to.includes('owner@shop.example.com'));
    expect(mail?.raw).toContain('Subject: Your shop www.bio-ex.co.uk is ready');
    // The customer's credentials (the manifest's), in the mail and once more through the support API (audited); never in the job's output.
    const secrets = JSON.parse(decryptSecret(engine.app.get<EngineConfig>(ENGINE_CONFIG).secretsKey, install.secretsEnc!)) as Record<string, string>;
    expect(mail?.raw).toMatch(new RegExp(`Admin user: +admin\\r?\\n +Admin password: +${secrets.admin_password}`));
    const support = (await engine.app.get(ApiTokensService).issue('helpdesk-credentials', ['support'], { actor: 'test', via: 'cli' })).token;
    expect((await call(orders, 'GET', `/v1/installs/${installId}/credentials`)).status).toBe(403);
    const credentials = await call(support, 'GET', `/v1/installs/${installId}/credentials`);
    expect(credentials.status).toBe(200);
    expect(credentials.headers.get('cache-control')).toBe('no-store');
    expect(await json(credentials)).toEqual({
      credentials: [{ label: 'Admin user', value: 'admin' }, { label: 'Admin password', value: secrets.admin_password }],
      ftp: { user: view.fsName, password: secrets['@ftp'] },
    });
    expect(mail?.raw).toContain(secrets['@ftp']);
    const audited = await ds().getRepository(AuditEvent).find({ where: { action: 'install.credentials', targetId: String(installId) } });
    expect(audited).toHaveLength(1);
    expect(JSON.stringify(audited)).not.toContain(secrets.admin_password);
    const output = (await ds().getRepository(SagaStep).find({ where: { jobId } })).map((s) => `${s.output ?? ''} ${s.error ?? ''}`).join('\n');
    for (const secret of Object.values(secrets)) expect(output).not.toContain(secret);
    expect(await ds().getRepository(Install).count({ where: { orderRef: 'ORD-1001' } })).toBe(1);
  });

  it("sets an install's rewrite rules through the support API: checked, stored, audited, live on both dispatchers; bad rules change nothing", async () => {
    const install = await ds().getRepository(Install).findOneByOrFail({ orderRef: 'ORD-1001' });
    const support = (await engine.app.get(ApiTokensService).issue('helpdesk', ['support'], { actor: 'test', via: 'cli' })).token;
    const path = `/v1/installs/${install.id}/rewrites`;
    const rules = [
      { match: 'exact', from: '/sale', to: '/category/sale', code: 302 },
      { match: 'prefix', from: '/old-shop/', to: 'https://www.bio-ex.co.uk/', code: 301 },
    ];
    const cases: [object, number, RegExp][] = [
      [{ rules: [{ ...rules[0], from: '/(.*)' }] }, 400, /from must be a path/],
      [{ rules: [{ ...rules[0], to: '/b$request_uri' }] }, 400, /to must be a local path/],
      [{ rules: [{ ...rules[0], to: '/a/../../etc' }] }, 400, /to must be a local path/],
      [{ rules: [{ ...rules[0], code: 200 }] }, 400, /code must be one of/],
      [{ rules: [{ ...rules[0], match: 'regex' }] }, 400, /match must be one of/],
      [{ rules: [{ ...rules[0], extra: 1 }] }, 400, /property extra should not exist/],
      [{ rules: 'all' }, 400, /rules must be an array/],
      // A path the codebase's manifest already routes (its PHP entry point, a denied path): nginx would refuse two locations.
      [{ rules: [{ match: 'exact', from: '/index.php', to: '/b', code: 301 }] }, 400, /another location has that path/],
      [{ rules: [{ match: 'prefix', from: '/mas_assets/theme/private', to: '/b', code: 301 }] }, 400, /another location has that path/],
      [{ rules: [rules[0], rules[0]] }, 400, /another location has that path/],
    ];
    for (const [body, status, message] of cases) {
      const res = await call(support, 'PUT', path, body);
      expect({ body, status: res.status }).toEqual({ body, status });
      expect(JSON.stringify(await json(res))).toMatch(message);
    }
    expect((await call(orders, 'PUT', path, { rules })).status).toBe(403);
    expect((await call(support, 'PUT', '/v1/installs/999999/rewrites', { rules })).status).toBe(404);
    expect((await ds().getRepository(Install).findOneByOrFail({ id: install.id })).customRewrites).toBeNull();

    const res = await call(support, 'PUT', path, { rules });
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual(rules);
    expect((await ds().getRepository(Install).findOneByOrFail({ id: install.id })).customRewrites).toEqual(rules);
    expect(await ds().getRepository(AuditEvent).count({ where: { action: 'install.rewrites', targetId: String(install.id) } })).toBe(1);
    // Rebuilt by the worker on both dispatchers, through nginx -t.
    for (const server of ['d1', 'd2']) {
      const file = join(base, server, 'srv/nginx/current/shops', `${install.fsName}.conf`);
      await eventually(async () => existsSync(file) && readFileSync(file, 'utf8').includes('location = /sale { return 302 /category/sale; }'), 60_000, `the rules live on ${server}`);
      expect(readFileSync(file, 'utf8')).toContain('location ^~ /old-shop/ { return 301 https://www.bio-ex.co.uk/; }');
    }

    expect((await call(support, 'PUT', path, { rules: [] })).status).toBe(200);
    // Without rules of its own it shares its server block again.
    await eventually(async () => vhostOf(join(base, 'd1', 'srv/nginx/current'), install.fsName)?.shared === true, 60_000, 'the rules gone on d1');
    expect(vhostOf(join(base, 'd1', 'srv/nginx/current'), install.fsName)!.text).not.toContain('/sale');
  });

  it('refuses bad orders with a precise message and creates nothing', async () => {
    const count = async () => ({ installs: await ds().getRepository(Install).count(), jobs: await ds().getRepository(Job).count(), sites: await ds().getRepository(InstallSite).count() });
    const before = await count();
    const good = { orderRef: 'ORD-BAD', customerEmail: 'x@example.com', license: 'paid', sites: [{ hostname: 'fresh.example.com' }] };
    const cases: [object, number, RegExp][] = [
      [{ ...good, sites: [{ hostname: 'not a host' }] }, 400, /hostname must be a fully qualified hostname/],
      [{ ...good, sites: [] }, 400, /sites must name at least one site/],
      [{ ...good, license: 'gold' }, 400, /license must be one of free, paid/],
      [{ ...good, coupon: 'x' }, 400, /property coupon should not exist/],
      [{ ...good, sites: [{ hostname: 'a.example.com' }, { hostname: 'A.example.com' }] }, 400, /a\.example\.com named twice/],
      [{ ...good, sites: [{ hostname: 'www.bio-ex.co.uk' }] }, 409, /Already served by a live install: www\.bio-ex\.co\.uk/],
      [{ ...good, orderRef: "x'; DROP TABLE installs; --" }, 400, /orderRef must be/],
      [{ ...good, shop: { storeName: 'Bikes\nSubject: spam' } }, 400, /shop.storeName must be 1-128 characters without control characters/],
      [{ ...good, shop: { storeName: 'x'.repeat(129) } }, 400, /shop.storeName must be 1-128 characters/],
      [{ ...good, shop: { storeName: ' Bikes' } }, 400, /shop.storeName must not start or end with a blank/],
      [{ ...good, shop: { adminEmail: 'nobody' } }, 400, /shop.adminEmail must be an email address/],
      [{ ...good, shop: { locale: 'en_GB.UTF-8; rm -rf /' } }, 400, /shop.locale must be a language code/],
      [{ ...good, shop: { storeName: 'Bikes', theme: 'dark' } }, 400, /property theme should not exist/],
      [{ ...good, shop: 'Bikes' }, 400, /shop must be an object/],
    ];
    for (const [body, status, message] of cases) {
      const res = await call(orders, 'POST', '/v1/installs', body);
      expect({ body, status: res.status }).toEqual({ body, status });
      expect((await json(res)).message).toMatch(message);
    }
    const big = await call(orders, 'POST', '/v1/installs', { ...good, customerEmail: `${'a'.repeat(300_000)}@example.com` });
    expect(big.status).toBe(413);
    expect((await call(admin, 'GET', '/v1/installs?limit=1000')).status).toBe(400);
    expect((await call(orders, 'GET', '/v1/installs')).status).toBe(403);
    expect(await count()).toEqual(before);
  });

  it('manages pin rules through the admin API', async () => {
    const bad = await call(admin, 'POST', '/v1/pin-rules', { matchEmail: 'not-an-email', serverId: ids.d2 });
    expect(bad.status).toBe(400);
    expect((await call(orders, 'POST', '/v1/pin-rules', { matchEmail: 'a@example.com', serverId: ids.d2 })).status).toBe(403);
    const created = await call(admin, 'POST', '/v1/pin-rules', { matchAttribute: 'reseller', matchValue: 'acme', serverId: ids.d2, note: 'acme shops on d2' });
    expect(created.status).toBe(201);
    const rule = await json(created);
    expect(rule).toMatchObject({ matchAttribute: 'reseller', matchValue: 'acme', serverId: ids.d2, priority: 100 });
    expect((await json(await call(admin, 'GET', '/v1/pin-rules'))).map((r: { id: number }) => r.id)).toContain(rule.id);
    expect((await call(admin, 'DELETE', `/v1/pin-rules/${rule.id}`)).status).toBe(204);
    expect((await call(admin, 'DELETE', `/v1/pin-rules/${rule.id}`)).status).toBe(404);
  });

  it('fails an install whose SQL update fails, naming file and statement, and leaves nothing behind', async () => {
    const res = await call(orders, 'POST', '/v1/installs', { orderRef: 'ORD-BROKEN', customerEmail: 'broken@example.com', license: 'free', sites: [{ hostname: 'broken-shop.example.com' }] });
    expect(res.status).toBe(202);
    const { installId } = await json(res);
    const view = await settled(installId);
    expect(view.status).toBe('failed');
    expect(view.statusReason).toMatch(/sql-updates: 0003_broken\.sql line 2 on db1\.example\.net: Table .*no_such_table.* doesn't exist; statement: INSERT INTO no_such_table/);
    // Every step that ran is undone: the SQL lane's, and as much of the other lane (sync, crons, ftp ...) as ran beside it (how far it got varies).
    const compensated = view.steps.filter((s: { state: string }) => s.state === 'compensated').map((s: { name: string }) => s.name);
    expect(compensated).toEqual(expect.arrayContaining(['php-user', 'home', 'tree', 'config', 'database', 'sql-updates']));
    expect(view.steps.filter((s: { state: string }) => s.state !== 'compensated' && s.state !== 'pending')).toEqual([]);
    expect(view.steps.filter((s: { state: string }) => s.state === 'pending').map((s: { name: string }) => s.name)).toEqual(expect.arrayContaining(['probe', 'mail']));
    // The sweep: nothing on either dispatcher, in the database server, or held in the catalog.
    for (const server of ['d1', 'd2']) {
      for (const dir of ['home', 'cron.d']) expect(readdirSync(join(base, server, 'srv', dir)).filter((f) => f.includes(view.fsName))).toEqual([]);
      // A rebuild while it was building may have carried its vhost: the rebuild its failure asked for drops it.
      await eventually(async () => vhostOf(join(base, server, 'srv/nginx/current'), view.fsName) === null, 30_000, `the vhost of ${view.fsName} to go from ${server}`);
    }
    const { mariadb } = readTestbed();
    const adminDb = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: mariadb.adminUser, password: mariadb.adminPassword });
    try {
      const [dbs] = await adminDb.query('SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?', [view.dbName]);
      const [users] = await adminDb.query('SELECT User FROM mysql.user WHERE User = ?', [view.dbUser]);
      expect([dbs, users]).toEqual([[], []]);
    } finally {
      await adminDb.end();
    }
    const sites = await ds().getRepository(InstallSite).find({ where: { installId } });
    expect(await ds().getRepository(SiteName).count({ where: { installId } })).toBe(0);
    expect(await ds().getRepository(InstallSiteIp).count({ where: { installSiteId: sites[0]!.id } })).toBe(0);
    expect((await ds().getRepository(SharedCodeGroup).findOneByOrFail({ id: ids['free-broken'] })).installCount).toBe(0);
    // The hostname is free again: a new order for it goes live.
    const retry = await call(orders, 'POST', '/v1/installs', { orderRef: 'ORD-RETRY', customerEmail: 'b@example.com', license: 'paid', sites: [{ hostname: 'broken-shop.example.com' }] });
    expect(retry.status).toBe(202);
    expect(await settled((await json(retry)).installId)).toMatchObject({ status: 'live' });
  });
});
