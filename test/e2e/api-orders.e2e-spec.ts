import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { ApiTokensService } from '@app/auth';
import { Install, InstallSite, Job, Server, ServerIp, SharedCodeGroup } from '@app/catalog';
import { startEngine, type RunningEngine } from '../../apps/engine/src/start-engine.js';
import { createTestCatalog, testEngineConfig, type TestCatalog } from '../support/catalog.js';
import { testServer } from '../support/server-roots.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = async (res: Response): Promise<any> => res.json();

/**
 * What the order hook refuses before anything is recorded: unknown members
 * whatever their name, hostnames the renderer would refuse, more sites than
 * the license allows, and more orders a minute than a token may place, counted
 * across two API instances on one catalog. Builds are queued, never run.
 */
describe('the order hook refuses, creating nothing (MariaDB, two API instances)', () => {
  let catalog: TestCatalog;
  let engine: RunningEngine;
  let second: RunningEngine;
  let support: string;
  let seq = 0;
  const scratch = mkdtempSync(join(tmpdir(), 'api-orders-'));
  const by = { actor: 'test', via: 'cli' as const };
  const limits = { ENGINE_ROLES: 'api', ORDERS_PER_MINUTE: '5', MAX_SITES_FREE: '2', MAX_SITES_PAID: '20' };

  beforeAll(async () => {
    catalog = await createTestCatalog('mariadb', 'api_orders');
    engine = await startEngine(testEngineConfig(catalog.url, limits));
    second = await startEngine(testEngineConfig(catalog.url, limits));
    support = (await engine.app.get(ApiTokensService).issue('desk', ['support'], by)).token;
    const ds = engine.app.get(DataSource);
    const dispatcher = await ds.getRepository(Server).save(testServer(join(scratch, 'd1'), 'orders1.example.net', ['dispatcher', 'database'], null));
    await ds
      .getRepository(ServerIp)
      .save(Array.from({ length: 60 }, (_, i) => ({ serverId: dispatcher.id, ip: `127.0.132.${i + 1}`, kind: 'dedicated' as const, failoverGroup: null, activeServerId: null })));
    await ds.getRepository(ServerIp).save({ serverId: dispatcher.id, ip: '127.0.132.100', kind: 'shared', failoverGroup: null, activeServerId: null });
    for (const tier of ['free', 'paid'] as const) {
      await ds.getRepository(SharedCodeGroup).save({ name: `orders-${tier}`, tier, repoUrl: '/srv/repo', revision: 'abc', path: `/srv/orders-${tier}`, masterServerId: dispatcher.id, installLimit: 100, installCount: 0, pinned: false, manifest: null, state: 'ready' });
    }
  });
  afterAll(async () => {
    await second?.close();
    await engine?.close();
    await catalog?.drop();
    rmSync(scratch, { recursive: true, force: true });
  });

  const storefront = async () => (await engine.app.get(ApiTokensService).issue(`storefront-${++seq}`, ['orders'], by)).token;
  const post = (token: string, body: string | object, via: RunningEngine = engine) =>
    fetch(`${via.url}/v1/installs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  const order = (ref: string, sites: object[], license = 'paid') => ({ orderRef: ref, customerEmail: 'owner@example.com', license, sites });
  const counts = async () => {
    const ds = engine.app.get(DataSource);
    return { installs: await ds.getRepository(Install).count(), sites: await ds.getRepository(InstallSite).count(), jobs: await ds.getRepository(Job).count() };
  };

  it('refuses __proto__, constructor and prototype members of an order, at the top and inside a site', async () => {
    const token = await storefront();
    const before = await counts();
    const site = '{"hostname":"proto.example.com"}';
    const bodies: [string, string][] = [
      [`{"orderRef":"PROTO-1","customerEmail":"a@example.com","license":"paid","sites":[${site}],"__proto__":{"serverId":1}}`, '__proto__'],
      [`{"orderRef":"PROTO-2","customerEmail":"a@example.com","license":"paid","sites":[${site}],"constructor":{"prototype":{}}}`, 'constructor'],
      [`{"orderRef":"PROTO-3","customerEmail":"a@example.com","license":"paid","sites":[{"hostname":"proto.example.com","prototype":1}]}`, 'sites.0.prototype'],
      [`{"orderRef":"PROTO-4","customerEmail":"a@example.com","license":"paid","sites":[${site}],"attributes":{"__proto__":"x"}}`, 'attributes.__proto__'],
    ];
    for (const [body, field] of bodies) {
      const res = await post(token, body);
      expect({ field, status: res.status }).toEqual({ field, status: 400 });
      const error = await json(res);
      expect(error.code).toBe('VALIDATION_FAILED');
      expect(error.details.fields).toContainEqual({ field, problems: [`property ${field.split('.').pop()} should not exist`] });
    }
    expect(await counts()).toEqual(before);
  });

  it('refuses hostnames the renderer would refuse, and stores punycode and case-folded names without the trailing dot', async () => {
    const token = await storefront();
    const before = await counts();
    const refused: [object, RegExp][] = [
      [{ hostname: 'bücher.example.com' }, /hostname .*punycode \(xn--bcher-kva\.example\.com\)/],
      [{ hostname: 'shop.example.com', secureHostname: 'sécure.example.com' }, /secureHostname .*punycode/],
      [{ hostname: 'ab--cd.example.com' }, /positions 3-4/],
      [{ hostname: 'localhost' }, /at least two labels/],
    ];
    for (const [site, message] of refused) {
      const res = await post(token, order(`HOST-${++seq}`, [site]));
      expect({ site, status: res.status }).toEqual({ site, status: 400 });
      expect((await json(res)).message).toMatch(message);
    }
    expect(await counts()).toEqual(before);

    const accepted = await post(token, order('HOST-OK', [{ hostname: 'Shop.Example.COM.', secureHostname: 'XN--BCHER-KVA.example.com.' }]));
    expect(accepted.status).toBe(202);
    const { installId } = await json(accepted);
    const view = await json(await fetch(`${engine.url}/v1/installs/${installId}`, { headers: { authorization: `Bearer ${support}` } }));
    expect(view.sites).toEqual([expect.objectContaining({ hostname: 'shop.example.com', secureHostname: 'xn--bcher-kva.example.com' })]);
  });

  it('limits the sites of an order by license (MAX_SITES_FREE, MAX_SITES_PAID)', async () => {
    const token = await storefront();
    const before = await counts();
    const sites = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => ({ hostname: `${prefix}${i}.example.org` }));
    const tooMany = await post(token, order('SITES-1', sites(3, 'free'), 'free'));
    expect(tooMany.status).toBe(400);
    expect(await json(tooMany)).toMatchObject({ code: 'TOO_MANY_SITES', details: { license: 'free', maxSites: 2, sites: 3 } });
    expect(await counts()).toEqual(before);

    expect((await post(token, order('SITES-2', sites(2, 'free'), 'free'))).status).toBe(202);
    expect((await post(token, order('SITES-3', sites(3, 'paid'), 'paid'))).status).toBe(202);
  });

  it('limits the orders of a token per minute across API instances: 429 with Retry-After, nothing created', async () => {
    // The limit counts calendar minutes: start early in one so the test does not straddle two.
    const left = 60_000 - (Date.now() % 60_000);
    if (left < 15_000) await new Promise((r) => setTimeout(r, left + 100));
    const token = await storefront();
    const other = await storefront();
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await post(token, order(`RATE-${i}`, [{ hostname: `rate${i}.example.net` }]), i % 2 === 0 ? engine : second)).status);
    expect(statuses).toEqual([202, 202, 202, 202, 202]);

    const before = await counts();
    for (const via of [second, engine]) {
      const limited = await post(token, order('RATE-5', [{ hostname: 'rate5.example.net' }]), via);
      expect(limited.status).toBe(429);
      const retryAfter = Number(limited.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(60);
      expect(await json(limited)).toMatchObject({ code: 'RATE_LIMITED', details: { limitPerMinute: 5, retryAfterSeconds: retryAfter } });
    }
    // A repeated reference is a request like any other.
    expect((await post(token, order('RATE-0', [{ hostname: 'rate0.example.net' }]))).status).toBe(429);
    expect(await counts()).toEqual(before);
    expect(await engine.app.get(DataSource).getRepository(Install).countBy({ orderRef: 'RATE-5' })).toBe(0);

    // Another token has its own count.
    expect((await post(other, order('RATE-OTHER', [{ hostname: 'rate-other.example.net' }]), second)).status).toBe(202);
  });
});
