import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { ApiTokensService } from '@app/auth';
import { Install, InstallSite, InstallSiteIp, Job, Server, ServerIp, SharedCodeGroup } from '@app/catalog';
import { startEngine, type RunningEngine } from '../../apps/engine/src/start-engine.js';
import { createTestCatalog, testEngineConfig, type TestCatalog } from '../support/catalog.js';
import { testServer } from '../support/server-roots.js';

/**
 * 200 orders at once through the HTTP order hook (the api role only: builds
 * are queued, not run), 30% of them repeating an earlier reference, random
 * hostnames, an IP pool smaller than the demand.
 */
describe('200 concurrent orders through POST /v1/installs (MariaDB)', () => {
  let catalog: TestCatalog;
  let engine: RunningEngine;
  let token: string;
  // Orders touch no server: the rows' roots are directories of a scratch folder.
  const scratch = mkdtempSync(join(tmpdir(), 'orders-burst-'));

  beforeAll(async () => {
    catalog = await createTestCatalog('mariadb', 'orders_burst');
    engine = await startEngine(testEngineConfig(catalog.url, { ENGINE_ROLES: 'api', ORDERS_PER_MINUTE: '0' }));
    token = (await engine.app.get(ApiTokensService).issue('storefront', ['orders'], { actor: 'test', via: 'cli' })).token;
    const ds = engine.app.get(DataSource);
    const server = (hostname: string, roles: Server['roles']) => ds.getRepository(Server).save(testServer(join(scratch, hostname), hostname, roles, null));
    const d1 = await server('burst1.example.net', ['dispatcher']);
    const d2 = await server('burst2.example.net', ['dispatcher', 'database']);
    for (const [d, prefix] of [[d1, '10.71'], [d2, '10.72']] as const) {
      await ds.getRepository(ServerIp).save(Array.from({ length: 70 }, (_, i) => ({ serverId: d.id, ip: `${prefix}.0.${i + 1}`, kind: 'dedicated' as const, failoverGroup: null, activeServerId: null })));
    }
    for (const name of ['burst-a', 'burst-b']) {
      await ds.getRepository(SharedCodeGroup).save({ name, tier: 'paid', repoUrl: '/srv/repo', revision: 'abc', path: `/srv/${name}`, masterServerId: d1.id, installLimit: 30, installCount: 0, pinned: false, manifest: null, state: 'ready' });
    }
  });
  afterAll(async () => {
    await engine?.close();
    await catalog?.drop();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('makes one install per reference, never an IP twice or a group overfull, and refused orders leave nothing', async () => {
    const refs = Array.from({ length: 140 }, (_, i) => `BURST-${i}`);
    const hostname = new Map(refs.map((r) => [r, `${r.toLowerCase()}-${Math.random().toString(36).slice(2, 8)}.example.com`]));
    const orders = [...refs, ...Array.from({ length: 60 }, (_, i) => refs[(i * 11) % refs.length]!)].sort(() => Math.random() - 0.5);
    const answers = await Promise.all(
      orders.map(async (ref) => {
        const res = await fetch(`${engine.url}/v1/installs`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ orderRef: ref, customerEmail: 'burst@example.com', license: 'paid', sites: [{ hostname: hostname.get(ref) }] }),
        });
        return { ref, status: res.status, body: (await res.json()) as { installId?: number; jobId?: number; code?: string; message?: string } };
      }),
    );
    const ds = engine.app.get(DataSource);
    const installs = await ds.getRepository(Install).find();
    // Every answer is an install (202 new, 200 repeat) or the pool's refusal, naming the pool.
    expect(new Set(answers.map((a) => a.status))).toEqual(new Set([200, 202, 409]));
    for (const a of answers.filter((x) => x.status === 409)) expect(a.body).toMatchObject({ code: 'IP_POOL_EXHAUSTED', message: expect.stringMatching(/pool of burst[12]\.example\.net/) });
    // One install per reference; repeats got the same install and job.
    expect(new Set(installs.map((i) => i.orderRef)).size).toBe(installs.length);
    for (const a of answers.filter((x) => x.status < 300)) {
      const install = installs.find((i) => i.orderRef === a.ref)!;
      expect(a.body.installId).toBe(install.id);
    }
    const byRef = new Map<string, Set<number | undefined>>();
    for (const a of answers.filter((x) => x.status < 300)) byRef.set(a.ref, (byRef.get(a.ref) ?? new Set()).add(a.body.jobId));
    for (const jobIds of byRef.values()) expect(jobIds.size).toBe(1);
    // 70 IPs on each dispatcher, one per paid install on each: 70 installs.
    expect(installs).toHaveLength(70);
    const held = await ds.getRepository(InstallSiteIp).find();
    expect(held).toHaveLength(140);
    expect(new Set(held.map((h) => h.serverIpId)).size).toBe(140);
    expect(new Set(installs.map((i) => i.fsName)).size).toBe(70);
    expect(new Set(installs.map((i) => i.dbName)).size).toBe(70);
    expect(await ds.getRepository(InstallSite).count()).toBe(70);
    for (const g of await ds.getRepository(SharedCodeGroup).find()) {
      expect(g.installCount).toBeLessThanOrEqual(g.installLimit);
      expect(installs.filter((i) => i.sharedCodeGroupId === g.id)).toHaveLength(g.installCount);
    }
    // 60 slots for 70 installs: ten wait without a build job; the rest have exactly one.
    expect(installs.filter((i) => i.sharedCodeGroupId === null && i.status === 'preparing')).toHaveLength(10);
    expect(await ds.getRepository(Job).count({ where: { kind: 'install.build' } })).toBe(60);
    // (A repeat racing its first order's commit may meet the empty pool first: the reference still has its one install.)
    const accepted = new Set(answers.filter((a) => a.status < 300).map((a) => a.ref));
    const refused = new Set(answers.filter((a) => a.status === 409 && !accepted.has(a.ref)).map((a) => a.ref));
    expect(installs.some((i) => refused.has(i.orderRef))).toBe(false);
  }, 120_000);
});
