import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { ApiTokensService } from '@app/auth';
import { Install, Job, SagaStep, Server, ServerIp, SharedCodeGroup } from '@app/catalog';
import { buildSampleRepository, SAMPLE_MANIFEST } from '@app/codebases';
import { NginxRebuilds, phpUserOf } from '@app/webserver';
import { startEngine, type RunningEngine } from '../../apps/engine/src/start-engine.js';
import { createTestCatalog, ownInstallIds, testEngineConfig, type TestCatalog } from '../support/catalog.js';
import { startNginx, stopNginx } from '../support/nginx.js';
import { startHandlerFpm, stopHandlerFpm, type HandlerFpm } from '../support/handler-fpm.js';
import { startMountNamespace, stopMountNamespace, type MountNamespace } from '../support/mount-namespace.js';
import { eventually } from '../support/queue-context.js';
import { checkoutGroup, testServer } from '../support/server-roots.js';
import { startSshd, stopSshd } from '../support/sshd.js';
import { writeDbOptionsFile } from '../support/tenant-db-server.js';
import type { NginxServer, SshdServer } from '../support/testbed.js';
import { fetchSite } from '../support/web-installs.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = async (res: Response): Promise<any> => res.json();

/**
 * The issue's proof: two dispatchers and a cloud handler as three SSH test
 * servers, each with its engine-managed php-fpm (per-install pools, access
 * log per pool) and the dispatchers with nginx.
 */
describe('cloud handlers, end to end (3 SSH servers, nginx, php-fpm, MariaDB)', () => {
  let catalog: TestCatalog;
  let engine: RunningEngine;
  let ds: DataSource;
  let token: string;
  let base: string;
  const sshd: Record<string, SshdServer> = {};
  const machines: Record<string, MountNamespace> = {};
  const nginx: Record<string, NginxServer> = {};
  const fpm: Record<string, HandlerFpm> = {};
  const servers: Record<string, Server> = {};
  let install: Install;
  const HOSTS = { d1: '127.0.106.3', d2: '127.0.106.4', c1: '127.0.106.5' } as const;
  const SITE_IPS = { d1: '127.0.106.131', d2: '127.0.106.132' } as const;

  /** php-fpm as the engine manages it (a root master including the pool dir's `current/*.conf`, a sentinel pool of its own). */
  const startManagedFpm = async (name: string, poolDir: string) => {
    fpm[name] = await startHandlerFpm(join(base, `fpm-${name}`), poolDir, { mountNamespace: machines[name]!.pid });
  };
  const call = (method: string, path: string, body?: unknown) =>
    fetch(`${engine.url}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  /** The job done; on failure or timeout, the error names its state, last error and saga journal. */
  const jobDone = async (jobId: number) => {
    try {
      return await eventually(async () => {
        const job = await ds.getRepository(Job).findOneByOrFail({ id: jobId });
        if (job.state === 'dead') throw new Error(`dead: ${job.lastError}`);
        return job.state === 'done' ? job : null;
      }, 120_000, `job ${jobId}`);
    } catch (error) {
      const job = await ds.getRepository(Job).findOneBy({ id: jobId });
      const steps = await ds.getRepository(SagaStep).find({ where: { jobId }, order: { stepIndex: 'ASC' } });
      const journal = steps.map((s) => `${s.stepName}:${s.state}${s.error ? ` (${s.error})` : ''}`).join(', ');
      throw new Error(`job ${jobId} (${job?.kind}, ${job?.state}): ${error instanceof Error ? error.message : String(error)}; last error: ${job?.lastError}; journal: ${journal}`);
    }
  };
  /** Requests through both dispatchers; each PHP request is one line in the access log of the pool that served it. */
  const requests = async (n: number) => {
    const statuses: number[] = [];
    for (let i = 0; i < n; i++) statuses.push((await fetchSite(i % 2 ? SITE_IPS.d2 : SITE_IPS.d1, 'www.proof.test', '/')).status);
    return statuses;
  };
  const served = (name: 'd1' | 'd2' | 'c1') => {
    const log = join(servers[name]!.phpFpmPoolDir!, 'logs', `${install.fsName}.access.log`);
    return existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean).length : 0;
  };
  /** Both dispatchers' nginx runs the install's vhost (and so its upstream: named by a digest of its backends) as the catalog has it now. */
  const upstreamsLive = () =>
    eventually(async () => {
      const states = await Promise.all(['d1', 'd2'].map(async (name) => (await engine.app.get(NginxRebuilds).vhostState((await ds.getRepository(Server).findOneByOrFail({ id: servers[name]!.id })), install.id)).state));
      return states.every((state) => state === 'live');
    }, 60_000, 'the upstreams live on both dispatchers');
  const counts = () => ({ d1: served('d1'), d2: served('d2'), c1: served('c1') });
  const delta = (after: Record<string, number>, before: Record<string, number>) => Object.fromEntries(Object.keys(after).map((k) => [k, after[k]! - before[k]!]));

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'cloud-proof-'));
    chmodSync(base, 0o755);
    catalog = await createTestCatalog('mariadb', 'cloud_proof');
    // Three machines with one layout: each its own files behind the same home and shared code roots (a mount namespace each).
    for (const dir of ['home', 'shared_codes']) mkdirSync(join(base, 'common/srv', dir), { recursive: true });
    for (const name of Object.keys(HOSTS)) {
      const binds = ['home', 'shared_codes'].map((dir) => ({ source: join(base, name, 'srv', dir), target: join(base, 'common/srv', dir) }));
      for (const bind of binds) mkdirSync(bind.source, { recursive: true });
      if (name === 'c1') {
        // The cloud's own accounts: the install's user made and removed there must not be the dispatchers' (this machine's) one.
        execFileSync('cp', ['-a', '/etc', join(base, 'c1/etc')]);
        binds.push({ source: join(base, 'c1/etc'), target: '/etc' });
      }
      machines[name] = await startMountNamespace(join(base, `ns-${name}.log`), binds);
    }
    for (const [name, host] of Object.entries(HOSTS)) sshd[name] = await startSshd(join(base, `sshd-${name}`), host, { mountNamespace: machines[name]!.pid });
    const repo = await buildSampleRepository(join(base, 'repo'));
    engine = await startEngine(testEngineConfig(catalog.url, { ENGINE_ROLES: 'api,worker' }));
    ds = engine.app.get(DataSource);
    // Install ids (and so the user shop<id> the dispatchers make on this machine) in this file's own range.
    await ownInstallIds(ds, 108001);
    token = (await engine.app.get(ApiTokensService).issue('ops', ['admin', 'orders', 'support'], { actor: 'test', via: 'cli' })).token;
    for (const name of ['d1', 'd2', 'c1'] as const) {
      const dispatcher = name !== 'c1';
      // On one machine every loopback connection leaves from 127.0.0.1 (the route's source), so that is the dispatchers' private IP here:
      // the cloud's pools allow exactly it (listen.allowed_clients), as they allow each dispatcher's own private IP on a real network.
      const row = testServer(join(base, name), `${name}.proof.test`, dispatcher ? ['dispatcher', 'handler'] : ['cloud'], sshd[name]!, {
        privateIp: dispatcher ? '127.0.0.1' : HOSTS[name],
        homeRoot: join(base, 'common/srv/home'),
        sharedCodeRoot: join(base, 'common/srv/shared_codes'),
      });
      const poolDir = join(base, name, 'srv/php-pools');
      if (dispatcher) nginx[name] = await startNginx(join(base, `nginx-${name}`), { include: [join(row.nginxConfDir, 'current/*.conf')], mountNamespace: machines[name]!.pid });
      await startManagedFpm(name, poolDir);
      servers[name] = await ds.getRepository(Server).save({ ...row, phpFpmPoolDir: poolDir, phpFpmPidFile: fpm[name]!.pidFile, nginxPidFile: dispatcher ? join(nginx[name]!.prefix, 'nginx.pid') : null });
      if (dispatcher) await ds.getRepository(ServerIp).save({ serverId: servers[name]!.id, ip: SITE_IPS[name], kind: 'dedicated', failoverGroup: null, activeServerId: null });
    }
    servers.db = await ds.getRepository(Server).save(testServer(join(base, 'db'), 'db.proof.test', ['database'], null, { dbOptionsFile: writeDbOptionsFile(base), privateIp: '127.0.0.1' }));
    for (const name of ['d1', 'd2'] as const) checkoutGroup(repo.path, join(base, name, 'srv/shared_codes'), 'paid-1', repo.revisions[1]!);
    await ds.getRepository(SharedCodeGroup).save({
      name: 'paid-1', tier: 'paid', repoUrl: repo.path, revision: repo.revisions[1]!, path: join(servers.d1!.sharedCodeRoot, 'paid-1'), masterServerId: servers.d1!.id,
      installLimit: 10, installCount: 0, pinned: false, manifest: JSON.parse(JSON.stringify(SAMPLE_MANIFEST)), state: 'ready',
    });
    const order = await json(await call('POST', '/v1/installs', { orderRef: 'PROOF-1', customerEmail: 'owner@example.com', license: 'paid', sites: [{ hostname: 'www.proof.test' }] }));
    expect(order).toMatchObject({ installId: expect.any(Number), jobId: expect.any(Number) });
    await jobDone(order.jobId);
    install = await ds.getRepository(Install).findOneByOrFail({ id: order.installId });
    expect(install.status).toBe('live');
  }, 300_000);
  afterAll(async () => {
    await engine?.close();
    await catalog?.drop();
    await Promise.allSettled([...Object.values(nginx).map(stopNginx), ...Object.values(fpm).map(stopHandlerFpm), ...Object.values(sshd).map(stopSshd)]);
    await Promise.allSettled(Object.values(machines).map(stopMountNamespace));
    // The install's account the builds made on the dispatchers (this machine).
    if (install) execFileSync('sh', ['-c', `userdel --force ${phpUserOf(install)} 2>/dev/null; true`]);
    if (!process.env.KEEP_TEST_DIRS) rmSync(base, { recursive: true, force: true });
  });

  it('answers through both dispatchers, each from its own pool', async () => {
    const before = counts();
    expect(new Set(await requests(20))).toEqual(new Set([200]));
    expect(delta(counts(), before)).toEqual({ d1: 10, d2: 10, c1: 0 });
  });

  it('adds the cloud as a handler (checked first) and spreads requests by weight', async () => {
    const check = await json(await call('POST', `/v1/servers/${servers.c1!.id}/check`));
    expect(check.items.filter((i: { item: string }) => i.item.startsWith('reachable from')).map((i: { ok: boolean }) => i.ok)).toEqual([true, true]);
    const added = await json(await call('POST', `/v1/installs/${install.id}/handlers`, { serverId: servers.c1!.id, weight: 3 }));
    await jobDone(added.jobId);
    const before = counts();
    expect(new Set(await requests(80))).toEqual(new Set([200]));
    const got = delta(counts(), before);
    // Each dispatcher: its own socket pool weight 1, the cloud weight 3: about three quarters to the cloud.
    expect(got.d1! + got.d2! + got.c1!).toBe(80);
    expect(got.c1).toBeGreaterThanOrEqual(50);
    expect(got.c1).toBeLessThanOrEqual(70);
  });

  it('clouds only: every request served by the cloud', async () => {
    expect((await call('PUT', `/v1/installs/${install.id}/handlers/clouds-only`, { enabled: true })).status).toBe(200);
    await upstreamsLive();
    const before = counts();
    expect(new Set(await requests(40))).toEqual(new Set([200]));
    expect(delta(counts(), before)).toEqual({ d1: 0, d2: 0, c1: 40 });
  });

  it("the cloud's php-fpm stops: the permanent handlers (backups) serve, no 5xx after nginx's fail window", async () => {
    await stopHandlerFpm(fpm.c1!);
    // max_fails=3 per dispatcher: the first requests may fail while nginx learns the cloud is gone (the fail window).
    await requests(8);
    const before = counts();
    const statuses = await requests(40);
    expect(statuses.filter((s) => s >= 500)).toEqual([]);
    expect(delta(counts(), before)).toMatchObject({ c1: 0 });
    await startManagedFpm('c1', servers.c1!.phpFpmPoolDir!);
    expect((await call('PUT', `/v1/installs/${install.id}/handlers/clouds-only`, { enabled: false })).status).toBe(200);
    await upstreamsLive();
  });

  it('drains and removes the cloud with no failed request meanwhile', async () => {
    const failures: number[] = [];
    let running = true;
    const load = (async () => {
      while (running) {
        for (const s of await requests(2)) if (s !== 200) failures.push(s);
      }
    })();
    const drain = await json(await call('POST', `/v1/cloud-servers/${servers.c1!.id}/drain`));
    await jobDone(drain.jobId);
    const before = counts();
    await requests(10);
    expect(delta(counts(), before).c1).toBe(0);
    const removal = await json(await call('DELETE', `/v1/cloud-servers/${servers.c1!.id}`));
    await jobDone(removal.jobId);
    running = false;
    await load;
    expect(failures).toEqual([]);
    expect(await ds.getRepository(Server).findOneBy({ id: servers.c1!.id })).toBeNull();
    expect(existsSync(join(base, 'c1/srv/home', install.fsName))).toBe(false);
    expect(existsSync(join(base, 'd1/srv/home', install.fsName))).toBe(true);
    expect(existsSync(join(servers.c1!.phpFpmPoolDir!, 'current', `${install.fsName}.conf`))).toBe(false);
  });
});
