import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { ApiTokensService } from '@app/auth';
import { AuditEvent, Install } from '@app/catalog';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { decryptSecret } from '@app/installs';
import { startEngine, type RunningEngine } from '../../apps/engine/src/start-engine.js';
import { createTestCatalog, TEST_SECRETS_KEY, testEngineConfig, type TestCatalog } from '../support/catalog.js';
import { startDispatcherWeb, stopDispatcherWeb, type DispatcherWeb } from '../support/dispatcher-web.js';
import { cleanEnv, spawnWorker, type WorkerProcess } from '../support/processes-engine.js';
import { eventually } from '../support/queue-context.js';
import { startSmtp, type TestSmtp } from '../support/smtp.js';
import { startSshd, stopSshd } from '../support/sshd.js';
import { writeDbOptionsFile } from '../support/tenant-db-server.js';
import { readTestbed, type SshdServer } from '../support/testbed.js';
import {
  buildThirdPartyShopRepository,
  mailCredential,
  mailText,
  postForm,
  THIRD_PARTY_SHOP_EXPECTED as EXPECTED,
  type ThirdPartyShopRepository,
} from '../support/third-party-shop.js';
import { fetchSite } from '../support/web-installs.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = async (res: Response): Promise<any> => res.json();
const sha1 = (s: string) => createHash('sha1').update(s).digest('hex');

interface Tenant {
  orderRef: string;
  hostname: string;
  customerEmail: string;
  storeName: string;
  adminEmail: string;
  installId: number;
  fsName: string;
  ips: string[];
  /** From the welcome mail. */
  adminUser: string;
  adminPassword: string;
}

/**
 * Issue 14's proof: a third-party shop (OpenCart's layout, the fixture of
 * test/support/third-party-shop.ts) provisioned twice on one read-only
 * checkout, as production runs it: the API in this process, the builds in a
 * separate worker process, two SSH dispatchers each with nginx and php-fpm,
 * MariaDB, the welcome mail to an SMTP server. Each shop answers as itself,
 * through both dispatchers, with the manifest's routing, deny patterns, PHP
 * entry points, table prefix, long secrets and customer credentials.
 */
describe('a third-party shop hosted twice on one checkout (API and a worker process, two SSH dispatchers, MariaDB, SMTP)', () => {
  let base: string;
  let catalog: TestCatalog;
  let engine: RunningEngine;
  let worker: WorkerProcess;
  let smtp: TestSmtp;
  let second: SshdServer;
  let repo: ThirdPartyShopRepository;
  let admin: string;
  let orders: string;
  let support: string;
  const web: DispatcherWeb[] = [];
  const ids: Record<string, number> = {};
  const tenants: Tenant[] = [];
  /** The shared checkouts (every dispatcher's), as they were once both shops were live. */
  let checkoutsAtLive: string;

  const call = (token: string, method: string, path: string, body?: unknown) =>
    fetch(`${engine.url}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const ds = () => engine.app.get(DataSource);
  const roots = (name: string) => {
    const dir = (r: string) => {
      const p = join(base, name, 'srv', r);
      mkdirSync(p, { recursive: true });
      return p;
    };
    return { homeRoot: dir('home'), sharedCodeRoot: dir('shared_codes'), nginxConfDir: dir('nginx'), cronDir: dir('cron.d'), certsRoot: dir('certs') };
  };
  const ssh = (sshd: SshdServer) => ({ transport: 'ssh', sshHost: sshd.host, sshPort: sshd.port, sshUser: sshd.user, sshKeyRef: sshd.privateKeyPath, sshHostKey: sshd.hostKeyFingerprint });
  const settled = (id: number) =>
    eventually(async () => {
      const view = await json(await call(admin, 'GET', `/v1/installs/${id}`));
      return view.status === 'live' || view.status === 'failed' ? view : null;
    }, 150_000, `install ${id} to settle`);
  /** Every checkout under both dispatchers' shared code roots: each entry's path, mode, size and mtime. */
  const checkouts = () => ['d1', 'd2'].map((d) => `${d}:\n${listing(join(base, d, 'srv', 'shared_codes'))}`).join('\n');

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'third-party-e2e-'));
    chmodSync(base, 0o755);
    [catalog, smtp, second, repo] = await Promise.all([
      createTestCatalog('mariadb', 'third_party_e2e'),
      startSmtp(),
      startSshd(join(base, 'sshd-2'), '127.0.104.250'),
      buildThirdPartyShopRepository(join(base, 'repo')),
    ]);
    const [d1, d2] = [roots('d1'), roots('d2')];
    web.push(...(await Promise.all([startDispatcherWeb(join(base, 'web-d1'), d1.nginxConfDir, '127.0.103.200'), startDispatcherWeb(join(base, 'web-d2'), d2.nginxConfDir, '127.0.104.200')])));
    const env = { SMTP_URL: smtp.url };
    engine = await startEngine(testEngineConfig(catalog.url, { ENGINE_ROLES: 'api', ...env }));
    // The builds run in a worker process of their own, its every line kept: no secret may be among them.
    worker = await spawnWorker(cleanEnv({ CATALOG_URL: catalog.url, SECRETS_KEY: TEST_SECRETS_KEY, LOG_LEVEL: 'debug', ALLOW_LOCAL_TRANSPORT: 'true', VAR_DIR: join(base, 'worker-var'), ...env }));
    const tokens = engine.app.get(ApiTokensService);
    admin = (await tokens.issue('ops', ['admin'], { actor: 'test', via: 'cli' })).token;
    orders = (await tokens.issue('storefront', ['orders'], { actor: 'test', via: 'cli' })).token;
    support = (await tokens.issue('helpdesk', ['support'], { actor: 'test', via: 'cli' })).token;
    const add = async (name: string, body: object) => {
      const res = await call(admin, 'POST', '/v1/servers', body);
      expect(res.status).toBe(201);
      ids[name] = (await json(res)).id;
    };
    await add('d1', { hostname: 'shop-d1.example.net', roles: ['dispatcher', 'handler'], privateIp: '127.0.103.200', ...ssh(readTestbed().sshd), ...d1, nginxPidFile: web[0]!.pidFile });
    await add('d2', { hostname: 'shop-d2.example.net', roles: ['dispatcher', 'handler'], privateIp: '127.0.104.200', ...ssh(second), ...d2, nginxPidFile: web[1]!.pidFile });
    await add('db', { hostname: 'shop-db.example.net', roles: ['database'], privateIp: '127.0.0.1', transport: 'local', ...roots('db'), dbOptionsFile: writeDbOptionsFile(base) });
    expect((await call(admin, 'POST', `/v1/servers/${ids.d1}/ips`, { ips: ['127.0.103.1', '127.0.103.2'], kind: 'dedicated' })).status).toBe(201);
    expect((await call(admin, 'POST', `/v1/servers/${ids.d2}/ips`, { ips: ['127.0.104.1', '127.0.104.2'], kind: 'dedicated' })).status).toBe(201);
    const group = await json(await call(admin, 'POST', '/v1/code-groups', { name: 'opencart', tier: 'paid', repoUrl: repo.path, revision: repo.revision, masterServerId: ids.d1, installLimit: 5 }));
    expect(group.group?.id).toEqual(expect.any(Number));
    await eventually(async () => (await json(await call(admin, 'GET', `/v1/code-groups/${group.group.id}`))).state === 'ready', 120_000, 'the code group ready');

    // Two orders of the same codebase, each with its own store name (one with quotes and a backslash).
    const placed = [
      { orderRef: 'TP-1', hostname: 'bikes-shop.example.com', customerEmail: 'tom@bikes.example.com', storeName: `Tom's "Best" Bikes \\ Parts`, adminEmail: 'shop@bikes.example.com' },
      { orderRef: 'TP-2', hostname: 'garden-shop.example.org', customerEmail: 'ann@garden.example.org', storeName: 'Garden & Home', adminEmail: 'ann@garden.example.org' },
    ];
    const accepted = await Promise.all(
      placed.map(async (o) => {
        const res = await call(orders, 'POST', '/v1/installs', {
          orderRef: o.orderRef, customerEmail: o.customerEmail, license: 'paid', sites: [{ hostname: o.hostname }], shop: { storeName: o.storeName, adminEmail: o.adminEmail },
        });
        const body = await json(res);
        expect({ status: res.status, body }).toEqual({ status: 202, body: expect.objectContaining({ installId: expect.any(Number) }) });
        return body.installId as number;
      }),
    );
    for (const [i, o] of placed.entries()) {
      const view = await settled(accepted[i]!);
      expect({ orderRef: o.orderRef, status: view.status, reason: view.statusReason }).toEqual({ orderRef: o.orderRef, status: 'live', reason: null });
      const mail = await eventually(async () => smtp.received.find((m) => m.to.includes(o.customerEmail)) ?? null, 30_000, `the welcome mail of ${o.orderRef}`);
      const text = mailText(mail.raw);
      tenants.push({
        ...o, installId: accepted[i]!, fsName: view.fsName, ips: view.sites[0].ips.map((x: { ip: string }) => x.ip),
        adminUser: mailCredential(text, 'Admin user') ?? '', adminPassword: mailCredential(text, 'Admin password') ?? '',
      });
    }
    checkoutsAtLive = checkouts();
  }, 420_000);

  afterAll(async () => {
    if (worker) {
      worker.child.kill('SIGTERM');
      await worker.exited;
    }
    await engine?.close();
    await Promise.all(web.map((w) => stopDispatcherWeb(w)));
    await smtp?.stop();
    if (second) await stopSshd(second);
    await catalog?.drop();
    if (base) rmSync(base, { recursive: true, force: true });
  });

  it('serves both shops through both dispatchers, each storefront with its own store name, database and long keys', async () => {
    const key = engine.app.get<EngineConfig>(ENGINE_CONFIG).secretsKey;
    for (const t of tenants) {
      // One IP on each dispatcher: the shop is served by both.
      expect(t.ips).toHaveLength(2);
      const install = await ds().getRepository(Install).findOneByOrFail({ id: t.installId });
      const secrets = JSON.parse(decryptSecret(key, install.secretsEnc!)) as Record<string, string>;
      expect([secrets.encryption_key!.length, secrets.api_key!.length]).toEqual([1024, 256]);
      for (const ip of t.ips) {
        const page = await fetchSite(ip, t.hostname, '/');
        expect({ ip, status: page.status }).toEqual({ ip, status: 200 });
        // The config file (PHP escaping) and the install SQL (SQL escaping) both carry the store name as ordered.
        expect(page.body).toContain(`store: ${t.storeName}\ndb-store: ${t.storeName}\nroute: \nquery: \n`);
        expect(page.body).toContain(`url: http://${t.hostname}/\n`);
        expect(page.body).toContain(`email: ${t.adminEmail}\n`);
        // The dump, loaded in the shop's own format: prefix replaced (the code reads shop_ tables), strings untouched, utf8mb4, its stored function.
        expect(page.body).toContain(`meta: ${EXPECTED.metaDescription}\n`);
        expect(page.body).toContain(`products: ${EXPECTED.productCount}\ncheapest: ${EXPECTED.cheapest}\nproduct: ${EXPECTED.productName}\n`);
        expect(page.body).toContain(`encryption-key: 1024 ${sha1(secrets.encryption_key!)}\napi-key: 256 ${sha1(secrets.api_key!)}\n`);
      }
    }
  });

  it("PHP sees the client's REMOTE_ADDR", async () => {
    for (const t of tenants) {
      for (const ip of t.ips) expect((await fetchSite(ip, t.hostname, '/')).body).toMatch(/^remote: 127\.0\.0\.1$/m);
    }
  });

  it('serves the admin from its own directory and config, and logs in with the credentials of the welcome mail', async () => {
    for (const t of tenants) {
      expect({ user: t.adminUser, password: t.adminPassword }).toEqual({ user: EXPECTED.adminUser, password: expect.stringMatching(/^[A-Za-z0-9]{16}$/) });
      for (const ip of t.ips) {
        const page = await fetchSite(ip, t.hostname, '/admin/');
        expect({ ip, status: page.status, first: page.body.split('\n')[0] }).toEqual({ ip, status: 200, first: `${t.storeName} administration` });
        expect(page.body).toContain(`catalog: http://${t.hostname}/\n`);
        // The bcrypt hash and OpenCart 2's salted SHA-1 chain, both computed by the engine from the same generated password.
        for (const username of [t.adminUser, EXPECTED.legacyUser]) {
          expect(await postForm(ip, t.hostname, '/admin/', { username, password: t.adminPassword })).toEqual({ status: 200, body: `logged in as ${username} at ${t.storeName}\n` });
        }
        const other = tenants.find((o) => o !== t)!;
        expect((await postForm(ip, t.hostname, '/admin/', { username: 'admin', password: other.adminPassword })).status).toBe(403);
      }
    }
    expect(tenants[0]!.adminPassword).not.toBe(tenants[1]!.adminPassword);
  });

  it('shows the same credentials on GET /v1/installs/:id/credentials (support scope, audited), never in the worker\'s log', async () => {
    for (const t of tenants) {
      const path = `/v1/installs/${t.installId}/credentials`;
      expect((await call(orders, 'GET', path)).status).toBe(403);
      const audited = () => ds().getRepository(AuditEvent).count({ where: { targetId: String(t.installId) } });
      const before = await audited();
      const res = await call(support, 'GET', path);
      expect(res.status).toBe(200);
      const body = await json(res);
      expect(body.credentials).toEqual([
        { label: 'Admin user', value: t.adminUser },
        { label: 'Admin password', value: t.adminPassword },
      ]);
      expect(body.ftp).toEqual({ user: t.fsName, password: expect.any(String) });
      const mail = mailText(smtp.received.find((m) => m.to.includes(t.customerEmail))!.raw);
      expect(mail).toContain(body.ftp.password);
      expect(await audited()).toBe(before + 1);
      expect(worker.output()).not.toContain(t.adminPassword);
    }
    expect((await call(support, 'GET', '/v1/installs/999999/credentials')).status).toBe(404);
  });

  it('routes a path to the front controller with its query, answers the shop\'s 404 for an unknown route, nginx\'s for a missing image', async () => {
    for (const t of tenants) {
      for (const ip of t.ips) {
        const routed = await fetchSite(ip, t.hostname, `/${EXPECTED.categoryRoute}?x=1`);
        expect({ ip, status: routed.status }).toEqual({ ip, status: 200 });
        expect(routed.body).toContain(`store: ${t.storeName}\n`);
        expect(routed.body).toContain(`route: ${EXPECTED.categoryRoute}\nquery: x=1\n`);
        expect(routed.body).toContain(`category: ${EXPECTED.categoryName}\n`);
        const unknown = await fetchSite(ip, t.hostname, '/no/such-page');
        expect({ status: unknown.status, route: /route: (.*)\n/.exec(unknown.body)?.[1] }).toEqual({ status: 404, route: 'no/such-page' });
        // routing.notFound: a missing image never reaches PHP.
        const missing = await fetchSite(ip, t.hostname, EXPECTED.missingImage);
        expect({ ip, status: missing.status, php: missing.body.includes('store:') }).toEqual({ ip, status: 404, php: false });
        expect((await fetchSite(ip, t.hostname, EXPECTED.stylesheet)).body).toBe(EXPECTED.stylesheetBody);
      }
    }
  });

  it('denies templates, rendered configs, dot-files, ini files and logs (403); runs no other PHP file', async () => {
    for (const t of tenants) {
      for (const ip of t.ips) {
        for (const path of [...EXPECTED.denied, EXPECTED.errorLog, '/catalog/controller/startup/startup.php', '/system/library/db.php']) {
          expect({ ip, path, status: (await fetchSite(ip, t.hostname, path)).status }).toEqual({ ip, path, status: 403 });
        }
      }
    }
  });

  it("checks images by realpath prefix in the shop's home: a catalog image passes (cached in the home), a path out of it is refused", async () => {
    for (const t of tenants) {
      for (const ip of t.ips) {
        const ok = await fetchSite(ip, t.hostname, `/tool/image?f=${EXPECTED.image}`);
        expect({ ip, status: ok.status }).toEqual({ ip, status: 200 });
        expect(ok.body).toContain(`cached: ${EXPECTED.cachedImage}\n`);
        expect((await fetchSite(ip, t.hostname, `/image/${EXPECTED.cachedImage}`)).status).toBe(200);
        for (const f of ['../config.php', '../../../../etc/passwd']) {
          expect({ ip, f, status: (await fetchSite(ip, t.hostname, `/tool/image?f=${encodeURIComponent(f)}`)).status }).toEqual({ ip, f, status: 403 });
        }
      }
    }
  });

  it("never answers with the other tenant's data over 40 interleaved requests, and nothing is written in the shared checkout", async () => {
    const paths = ['/', '/admin/', `/${EXPECTED.categoryRoute}?x=2`, '/no-such-route'];
    const answers = await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const t = tenants[i % 2]!;
        const other = tenants[(i + 1) % 2]!;
        const ip = t.ips[Math.floor(i / 2) % t.ips.length]!;
        const path = paths[Math.floor(i / 4) % paths.length]!;
        const page = await fetchSite(ip, t.hostname, path);
        return { i, ip, path, ok: page.body.includes(t.storeName) && !page.body.includes(other.storeName) };
      }),
    );
    expect(answers.filter((a) => !a.ok)).toEqual([]);
    // Every request above ran the shops' code (their logs, image cache): none of it landed in a checkout.
    expect(checkouts()).toBe(checkoutsAtLive);
    for (const d of ['d1', 'd2']) {
      const root = join(base, d, 'srv', 'shared_codes');
      for (const name of readdirSync(root).filter((n) => existsSync(join(root, n, '.git')))) {
        expect({ d, name, status: execFileSync('git', ['-C', join(root, name), 'status', '--porcelain', '--ignored'], { encoding: 'utf8' }) }).toEqual({ d, name, status: '' });
      }
    }
  });
});

/** Each entry below `root` (recursively, not following links) with its mode, size and mtime, sorted. */
function listing(root: string): string {
  if (!existsSync(root)) return '';
  const walk = (dir: string): string[] =>
    readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) => {
      const path = dir ? `${dir}/${e.name}` : e.name;
      const s = lstatSync(join(root, path));
      const line = `${path} ${s.mode.toString(8)} ${s.size} ${s.mtimeMs}`;
      return e.isDirectory() ? [line, ...walk(path)] : [line];
    });
  return walk('').sort().join('\n');
}
