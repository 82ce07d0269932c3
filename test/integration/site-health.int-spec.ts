import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { INestApplicationContext, Type } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { Install, InstallSite, InstallSiteIp, IpPoolAlert, Server, ServerIp, SharedCodeGroup, SiteHealthState, SiteIncident } from '@app/catalog';
import { CodebasesModule } from '@app/codebases';
import { HostsModule } from '@app/hosts';
import { InstallsModule } from '@app/installs';
import { SagaModule } from '@app/saga';
import { FAILED_ROUNDS_FOR_INCIDENT, IpPoolLowWater, SiteHealth, SiteHealthModule } from '@app/site-health';
import { NginxPipeline, WebserverModule } from '@app/webserver';
import { ApiTokensService } from '@app/auth';
import { startEngine } from '../../apps/engine/src/start-engine.js';
import { createTestCatalog, TEST_SECRETS_KEY, testEngineConfig, type TestCatalog } from '../support/catalog.js';
import { cleanEnv, runCli } from '../support/processes-engine.js';
import { startNginx, stopNginx } from '../support/nginx.js';
import { startPhpFpm, stopPhpFpm, type PhpFpm } from '../support/php-fpm.js';
import { startQueueContext } from '../support/queue-context.js';
import { testServer } from '../support/server-roots.js';
import { startSmtp, type TestSmtp } from '../support/smtp.js';
import { readTestbed, type NginxServer } from '../support/testbed.js';
import { codeGroupFor, seedWebInstalls } from '../support/web-installs.js';

/**
 * Site health (the seed's cron_slave_widgets) against a real nginx and
 * php-fpm on an SSH dispatcher: rounds probe every live site; a site down
 * three rounds in a row opens one incident (its caches emptied, operations
 * mailed once through a real SMTP server), and closes it, mailed once, when
 * it answers again.
 */
describe('site health rounds (SSH dispatcher, nginx, php-fpm, MariaDB, SMTP)', () => {
  let base: string;
  let catalog: TestCatalog;
  let app: INestApplicationContext;
  let ds: DataSource;
  let nginx: NginxServer;
  let fpm: PhpFpm;
  let smtp: TestSmtp;
  let d1: Server;
  let health: SiteHealth;
  let installs: Install[];
  const ip = (n: number) => `127.0.119.${n}`;

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'site-health-'));
    chmodSync(base, 0o755);
    smtp = await startSmtp();
    catalog = await createTestCatalog('mariadb', 'site_health');
    app = await startQueueContext(catalog.url, [], null, [HostsModule.forRoot({ http: false }), CodebasesModule.forRoot({ http: false }), WebserverModule, InstallsModule.forRoot({ http: false }), SagaModule, SiteHealthModule.forRoot({ http: false })] as unknown as Type[], { SMTP_URL: smtp.url, OPS_EMAIL: 'ops@example.net', IP_POOL_LOW_WATER: '2' });
    ds = app.get(DataSource);
    const row = testServer(join(base, 'd1'), 'health-d1.example.net', ['dispatcher', 'handler'], readTestbed().sshd, { privateIp: ip(200) });
    nginx = await startNginx(join(base, 'nginx'), { include: [join(row.nginxConfDir, 'current/*.conf')] });
    d1 = await ds.getRepository(Server).save({ ...row, nginxPidFile: join(nginx.prefix, 'nginx.pid') });
    fpm = await startPhpFpm(join(base, 'fpm'), ip(200), 9000);
    const group: SharedCodeGroup = await codeGroupFor(ds, d1);
    installs = await seedWebInstalls(ds, d1, group, [
      { fsName: 'hone', hostname: 'one.health.example', ip: ip(1) },
      { fsName: 'htwo', hostname: 'two.health.example', ip: ip(1) },
      { fsName: 'hthree', hostname: 'three.health.example', ip: ip(2) },
    ]);
    await app.get(NginxPipeline).apply(d1);
    health = app.get(SiteHealth);
  });
  afterAll(async () => {
    await app?.close();
    if (nginx) await stopNginx(nginx);
    if (fpm) await stopPhpFpm(fpm);
    await smtp?.stop();
    await catalog?.drop();
    rmSync(base, { recursive: true, force: true });
  });

  const html = (fsName: string) => join(d1.homeRoot, fsName, 'html');
  const incidents = () => ds.getRepository(SiteIncident).find({ order: { id: 'ASC' } });

  it('a round over healthy sites asks each through its dispatcher once and writes nothing', async () => {
    const round = await health.round();
    expect(round).toMatchObject({ installs: 3, requests: 3, failing: 0, opened: [], closed: [] });
    expect(await ds.getRepository(SiteHealthState).count()).toBe(0);
  });

  it('opens one incident after three failed rounds (caches emptied, operations mailed once), and closes it once it answers', async () => {
    const down = installs[1]!;
    const cache = join(d1.homeRoot, down.fsName, 'heavymetal/cache');
    mkdirSync(cache, { recursive: true });
    writeFileSync(join(cache, 'stale.tmp'), 'stale');
    renameSync(join(html(down.fsName), 'index.php'), join(html(down.fsName), 'index.php.off'));

    for (let i = 1; i < FAILED_ROUNDS_FOR_INCIDENT; i++) {
      expect(await health.round()).toMatchObject({ failing: 1, opened: [] });
    }
    expect(await incidents()).toEqual([]);
    expect(smtp.received).toHaveLength(0);
    expect(await health.round()).toMatchObject({ failing: 1, opened: [down.id] });
    const [incident] = await incidents();
    expect(incident).toMatchObject({ installId: down.id, closedAt: null, cachesCleared: true, mailedOpened: true, failedRounds: FAILED_ROUNDS_FOR_INCIDENT });
    expect(incident!.problem).toMatch(/two\.health\.example via health-d1\.example\.net \(127\.0\.119\.1:\d+\/\): HTTP 4\d\d/);
    expect(existsSync(cache) && readdirSync(cache)).toEqual([]);
    expect(smtp.received).toHaveLength(1);
    expect(smtp.received[0]!.to).toEqual(['ops@example.net']);
    expect(smtp.received[0]!.raw).toMatch(/Subject: \[shop hosting\] site down: install \d+ \(htwo\)/);

    // Still down: no second incident, no second mail.
    await health.round();
    await health.round();
    expect(await incidents()).toHaveLength(1);
    expect((await incidents())[0]!.failedRounds).toBe(FAILED_ROUNDS_FOR_INCIDENT + 2);
    expect(smtp.received).toHaveLength(1);

    renameSync(join(html(down.fsName), 'index.php.off'), join(html(down.fsName), 'index.php'));
    expect(await health.round()).toMatchObject({ failing: 0, closed: [down.id] });
    expect((await incidents())[0]).toMatchObject({ closedAt: expect.any(Date), mailedClosed: true });
    expect(smtp.received).toHaveLength(2);
    expect(smtp.received[1]!.raw).toMatch(/Subject: \[shop hosting\] site back: install \d+ \(htwo\)/);
    // Healthy again: no state row left, nothing mailed on later rounds.
    await health.round();
    expect(await ds.getRepository(SiteHealthState).count()).toBe(0);
    expect(smtp.received).toHaveLength(2);
  });

  it('a failing streak shorter than three rounds opens nothing and is forgotten once the site answers', async () => {
    const flaky = installs[2]!;
    renameSync(join(html(flaky.fsName), 'index.php'), join(html(flaky.fsName), 'index.php.off'));
    await health.round();
    await health.round();
    renameSync(join(html(flaky.fsName), 'index.php.off'), join(html(flaky.fsName), 'index.php'));
    expect(await health.round()).toMatchObject({ failing: 0, opened: [], closed: [] });
    expect(await ds.getRepository(SiteHealthState).count()).toBe(0);
    expect(await incidents()).toHaveLength(1);
  });

  it('warns once per crossing when a server runs low on dedicated IPs, and again after a refill and a new crossing', async () => {
    const low = app.get(IpPoolLowWater);
    const [x, y] = await ds.getRepository(ServerIp).save([
      { serverId: d1.id, ip: '198.51.100.51', kind: 'dedicated' as const, failoverGroup: null, activeServerId: null },
      { serverId: d1.id, ip: '198.51.100.52', kind: 'dedicated' as const, failoverGroup: null, activeServerId: null },
    ]);
    expect(await low.check()).toMatchObject({ crossed: [], refilled: 0 });
    const site = await ds.getRepository(InstallSite).findOneByOrFail({ installId: installs[0]!.id });
    const hold = () => ds.getRepository(InstallSiteIp).save({ installSiteId: site.id, serverIpId: x!.id, serverId: d1.id, exclusiveIpId: x!.id });
    const mails = () => smtp.received.filter((m) => /free dedicated IP/.test(m.raw));
    const held = await hold();
    const first = await low.check();
    expect(first.crossed).toEqual([expect.objectContaining({ server: 'health-d1.example.net', kind: 'dedicated', total: 2, free: 1, low: true })]);
    expect(mails()).toHaveLength(1);
    expect(mails()[0]!.raw).toMatch(/Subject: \[shop hosting\] health-d1\.example\.net: 1 free dedicated IP\(s\) left/);
    // Still low: no second mail.
    expect((await low.check()).crossed).toEqual([]);
    expect(mails()).toHaveLength(1);
    expect(await ds.getRepository(IpPoolAlert).count()).toBe(1);
    // Refilled, then low again: a new crossing, a new mail.
    await ds.getRepository(InstallSiteIp).delete({ id: held.id });
    expect(await low.check()).toMatchObject({ crossed: [], refilled: 1 });
    await hold();
    expect((await low.check()).crossed).toHaveLength(1);
    expect(mails()).toHaveLength(2);
    void y;
  });

  it('lists the incidents over HTTP (GET /v1/site-incidents) and from the CLI (incidents:list); /health and the metrics name the low IP pool', async () => {
    const engine = await startEngine(testEngineConfig(catalog.url, { ENGINE_ROLES: 'api' }));
    try {
      const { token } = await engine.app.get(ApiTokensService).issue('incidents', ['support'], { actor: 'test', via: 'cli' });
      const get = (query: string) => fetch(`${engine.url}/v1/site-incidents${query}`, { headers: { authorization: `Bearer ${token}` } });
      const all = (await (await get('')).json()) as { installId: number; closedAt: string | null; cachesCleared: boolean }[];
      expect(all).toEqual([expect.objectContaining({ installId: installs[1]!.id, closedAt: expect.any(String), cachesCleared: true })]);
      expect(await (await get('?open=true')).json()).toEqual([]);
      expect(await (await get(`?installId=${installs[0]!.id}`)).json()).toEqual([]);
      expect((await get('?open=maybe')).status).toBe(400);
      expect((await get('?limit=0')).status).toBe(400);
      expect((await fetch(`${engine.url}/v1/site-incidents`)).status).toBe(401);
      // /health names the low pool (this engine's mark is the default, 5).
      const body = (await (await fetch(`${engine.url}/health`, { headers: { authorization: `Bearer ${token}` } })).json()) as { details: Record<string, Record<string, unknown>> };
      expect(body.details.ipPools).toMatchObject({ status: 'degraded', low: 1, lowWater: 5, pools: 'health-d1.example.net dedicated: 1 free of 2' });
      const metrics = await (await fetch(`${engine.url}/metrics`)).text();
      expect(metrics).toMatch(/shop_ip_pool_low\{server="health-d1\.example\.net",kind="dedicated"\} 1/);
    } finally {
      await engine.close();
    }
    const env = cleanEnv({ CATALOG_URL: catalog.url, SECRETS_KEY: TEST_SECRETS_KEY, VAR_DIR: join(base, 'cli-var'), LOG_LEVEL: 'silent' });
    const listed = await runCli(['incidents:list'], process.cwd(), env);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(new RegExp(`\\b${installs[1]!.id}\\b.*emptied.*two\\.health\\.example`));
    const open = await runCli(['incidents:list', '--open', '--json'], process.cwd(), env);
    expect(JSON.parse(open.stdout)).toEqual([]);
    expect((await runCli(['incidents:list', '--limit', 'x'], process.cwd(), env)).code).toBe(1);
  }, 120_000);
});
