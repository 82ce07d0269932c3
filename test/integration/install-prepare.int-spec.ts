import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { INestApplicationContext, Type } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { Install, InstallServer, InstallSite, InstallSiteIp, Job, Server, ServerIp, SharedCodeGroup, type NewServer } from '@app/catalog';
import { DomainError } from '@app/common';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { HostsModule } from '@app/hosts';
import { decryptSecret, InstallsService, PinRulesService, PrepareService, type CreateInstallDto } from '@app/installs';
import { WebserverModule } from '@app/webserver';
import { CATALOG_KINDS, createTestCatalog, type TestCatalog } from '../support/catalog.js';
import { startQueueContext } from '../support/queue-context.js';
import { testServer } from '../support/server-roots.js';

/** Prepare touches no server: the rows' roots are directories of a scratch folder. */
const scratch = mkdtempSync(join(tmpdir(), 'prepare-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
const server = (hostname: string, roles: NewServer['roles']): NewServer => testServer(join(scratch, hostname), hostname, roles, null);

/** The prepare phase against a real catalog: one transaction, races settled by the database. */
describe.each(CATALOG_KINDS)('prepare (%s)', (kind) => {
  let catalog: TestCatalog;
  let app: INestApplicationContext;
  let ds: DataSource;
  let prepare: PrepareService;
  const ids: Record<string, number> = {};

  const counts = async () => ({
    installs: await ds.getRepository(Install).count(),
    sites: await ds.getRepository(InstallSite).count(),
    siteIps: await ds.getRepository(InstallSiteIp).count(),
    servers: await ds.getRepository(InstallServer).count(),
    slots: (await ds.getRepository(SharedCodeGroup).find()).reduce((n, g) => n + g.installCount, 0),
  });
  const order = (ref: string, license: 'free' | 'paid', hostnames: string[]): CreateInstallDto =>
    ({ orderRef: ref, customerEmail: 'Owner@Example.com', license, sites: hostnames.map((hostname) => ({ hostname })) }) as CreateInstallDto;
  const addIps = async (serverId: number, kind: ServerIp['kind'], prefix: string, n: number) => {
    for (let i = 1; i <= n; i++) await ds.getRepository(ServerIp).save({ serverId, ip: `${prefix}.${i}`, kind, failoverGroup: null, activeServerId: null });
  };

  beforeAll(async () => {
    catalog = await createTestCatalog(kind, 'prepare');
    // InstallsService asks for the nginx rebuilds of new installs (queued here, never run).
    app = await startQueueContext(catalog.url, [PrepareService, PinRulesService, InstallsService], null, [HostsModule.forRoot({ http: false }), WebserverModule] as unknown as Type[]);
    ds = app.get(DataSource);
    prepare = app.get(PrepareService);
    for (const [name, roles] of [
      ['d1', ['dispatcher', 'handler']],
      ['d2', ['dispatcher', 'handler']],
      ['db', ['database']],
    ] as const) {
      ids[name] = (await ds.getRepository(Server).save(server(`${name}.example.net`, [...roles]))).id;
    }
    await addIps(ids.d1!, 'dedicated', '10.0.1', 4);
    await addIps(ids.d2!, 'dedicated', '10.0.2', 3);
    await addIps(ids.d1!, 'shared', '10.0.9', 1);
    const group = (name: string, tier: 'free' | 'paid', installLimit: number) =>
      ds.getRepository(SharedCodeGroup).save({ name, tier, repoUrl: '/srv/repo', revision: 'abc', path: `/srv/d1/shared_codes/${name}`, masterServerId: ids.d1!, installLimit, installCount: 0, pinned: false, manifest: null, state: 'ready' });
    ids.paid = (await group('paid-1', 'paid', 2)).id;
    ids.free = (await group('free-1', 'free', 100)).id;
  });
  afterAll(async () => {
    await app?.close();
    await catalog?.drop();
  });

  it('records a paid install on every dispatcher with an IP per site per dispatcher, names, password and a group slot', async () => {
    const { install, created } = await prepare.prepare(order('A-1', 'paid', ['www.bio-ex.co.uk', 'shop.bio-ex.co.uk']));
    expect(created).toBe(true);
    expect(install).toMatchObject({ fsName: 'bioexcouk', dbName: 'shop_bioexcouk', dbUser: 'bioexcouk', customerEmail: 'owner@example.com', status: 'preparing', sharedCodeGroupId: ids.paid, dbServerId: ids.db });
    const config = app.get<EngineConfig>(ENGINE_CONFIG);
    expect(decryptSecret(config.secretsKey, install.dbPasswordEnc)).toMatch(/^[A-Za-z0-9]{24}$/);
    const servers = await ds.getRepository(InstallServer).find({ where: { installId: install.id }, order: { id: 'ASC' } });
    expect(servers.map((s) => [s.serverId, s.role])).toEqual([
      [install.masterServerId, 'master'],
      [install.masterServerId === ids.d1 ? ids.d2 : ids.d1, 'replica'],
    ]);
    const siteIps = await ds.getRepository(InstallSiteIp).find({ relations: { serverIp: true } });
    expect(siteIps).toHaveLength(4);
    expect(new Set(siteIps.map((s) => s.serverIpId)).size).toBe(4);
    expect(siteIps.every((s) => s.exclusiveIpId === s.serverIpId && s.serverIp!.kind === 'dedicated' && s.serverIp!.serverId === s.serverId)).toBe(true);
    expect((await ds.getRepository(SharedCodeGroup).findOneByOrFail({ id: ids.paid })).installCount).toBe(1);
  });

  it('returns the same install for a repeated order reference, and creates nothing more', async () => {
    const before = await counts();
    const first = await ds.getRepository(Install).findOneByOrFail({ orderRef: 'A-1' });
    const again = await prepare.prepare(order('A-1', 'paid', ['www.bio-ex.co.uk', 'shop.bio-ex.co.uk']));
    expect(again).toMatchObject({ created: false, install: { id: first.id } });
    expect(await counts()).toEqual(before);
  });

  it('records a free install on one dispatcher with its shared IP', async () => {
    const { install } = await prepare.prepare(order('F-1', 'free', ['free-shop.example.org']));
    const [site] = await ds.getRepository(InstallSite).find({ where: { installId: install.id } });
    const ips = await ds.getRepository(InstallSiteIp).find({ where: { installSiteId: site!.id }, relations: { serverIp: true } });
    expect(ips.map((i) => [i.serverIp!.ip, i.exclusiveIpId])).toEqual([['10.0.9.1', null]]);
    expect(await ds.getRepository(InstallServer).count({ where: { installId: install.id } })).toBe(1);
    expect(install.sharedCodeGroupId).toBe(ids.free);
  });

  it('refuses a hostname that a live install serves, or one named twice, and changes nothing', async () => {
    const before = await counts();
    await expect(prepare.prepare(order('B-1', 'paid', ['new.example.com', 'shop.bio-ex.co.uk']))).rejects.toMatchObject({ code: 'HOSTNAME_TAKEN', message: expect.stringContaining('shop.bio-ex.co.uk') });
    await expect(prepare.prepare(order('B-2', 'free', ['twice.example.com', 'twice.example.com']))).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    expect(await counts()).toEqual(before);
  });

  it('names the exhausted pool and leaves nothing half-allocated', async () => {
    // d2 has 3 dedicated IPs: 2 are held; a paid order for two sites needs two more there.
    const before = await counts();
    const error = await prepare.prepare(order('C-1', 'paid', ['c1.example.com', 'c2.example.com'])).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DomainError);
    expect(error).toMatchObject({ code: 'IP_POOL_EXHAUSTED', status: 409, message: expect.stringMatching(/dedicated IP left in the pool of d2\.example\.net/) });
    expect(await counts()).toEqual(before);
  });

  it('follows pin rules (customer email, order attribute) to their group and server; nobody else gets a pinned group', async () => {
    const pinned = await ds.getRepository(SharedCodeGroup).save({ name: 'own-1', tier: 'free', repoUrl: '/srv/repo', revision: 'abc', path: '/srv/d2/shared_codes/own-1', masterServerId: ids.d2!, installLimit: 1, installCount: 0, pinned: true, manifest: null, state: 'ready' });
    const rules = app.get(PinRulesService);
    const by = { actor: 'test', via: 'cli' as const };
    await rules.create({ matchEmail: 'VIP@example.com', codeGroupId: pinned.id, serverId: ids.d2!, priority: 10 }, by);
    await rules.create({ matchAttribute: 'reseller', matchValue: 'acme', serverId: ids.d2! }, by);
    await expect(rules.create({ matchEmail: 'x@example.com' }, by)).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    await expect(rules.create({ matchEmail: 'x@example.com', serverId: ids.db! }, by)).rejects.toMatchObject({ code: 'NOT_A_DISPATCHER' });
    await ds.getRepository(ServerIp).save({ serverId: ids.d2!, ip: '10.0.2.9', kind: 'shared', failoverGroup: null, activeServerId: null });

    const plain = await prepare.prepare(order('P-0', 'free', ['plain.example.com']));
    expect(plain.install.sharedCodeGroupId).toBe(ids.free);
    const vip = await prepare.prepare({ ...order('P-1', 'free', ['vip.example.com']), customerEmail: 'vip@example.com' } as CreateInstallDto);
    expect(vip.install).toMatchObject({ sharedCodeGroupId: pinned.id, masterServerId: ids.d2 });
    const reseller = await prepare.prepare({ ...order('P-2', 'free', ['acme-shop.example.com']), attributes: { reseller: 'acme' } } as CreateInstallDto);
    expect(reseller.install).toMatchObject({ sharedCodeGroupId: ids.free, masterServerId: ids.d2 });
    // The pinned group is full (limit 1): the customer's next order waits for it, never takes another group.
    const again = await prepare.prepare({ ...order('P-3', 'free', ['vip2.example.com']), customerEmail: 'vip@example.com' } as CreateInstallDto);
    expect(again.install).toMatchObject({ sharedCodeGroupId: null, statusReason: expect.stringContaining(`pinned code group ${pinned.id}`) });
  });

  it('waits for a group when the tier has no room, and never overfills one', async () => {
    await prepare.prepare(order('G-1', 'paid', ['g1.example.com']));
    const { install } = await prepare.prepare(order('G-2', 'paid', ['g2.example.com'])).catch(() => ({ install: null }));
    // The paid group's limit is 2 and d2's pool is now spent: the second order is refused by the pool, not the group.
    expect(install).toBeNull();
    const group = await ds.getRepository(SharedCodeGroup).findOneByOrFail({ id: ids.paid });
    expect(group.installCount).toBe(2);
    await ds.getRepository(ServerIp).save({ serverId: ids.d2!, ip: '10.0.2.50', kind: 'dedicated', failoverGroup: null, activeServerId: null });
    const waiting = await prepare.prepare(order('G-3', 'paid', ['g3.example.com']));
    expect(waiting.install).toMatchObject({ sharedCodeGroupId: null, statusReason: 'waiting for a paid code group with room' });
    expect((await ds.getRepository(SharedCodeGroup).findOneByOrFail({ id: ids.paid })).installCount).toBe(2);
    // Room opens (the limit is raised): the waiting install gets the slot and its build is queued, once.
    const installs = app.get(InstallsService);
    expect(await installs.queueWaiting()).toBe(0);
    await ds.getRepository(SharedCodeGroup).update({ id: ids.paid }, { installLimit: 3 });
    expect(await installs.queueWaiting()).toBe(1);
    expect(await installs.queueWaiting()).toBe(0);
    const started = await ds.getRepository(Install).findOneByOrFail({ id: waiting.install.id });
    expect(started).toMatchObject({ status: 'building', sharedCodeGroupId: ids.paid, statusReason: null });
    expect(await ds.getRepository(Job).count({ where: { idempotencyKey: `install.build:${waiting.install.id}` } })).toBe(1);
    expect((await ds.getRepository(SharedCodeGroup).findOneByOrFail({ id: ids.paid })).installCount).toBe(3);
  });
});

/** 200 concurrent orders on MariaDB: 30% repeat an earlier reference, the IP pool runs out. */
describe('prepare under 200 concurrent orders (mariadb)', () => {
  let catalog: TestCatalog;
  let app: INestApplicationContext;
  let ds: DataSource;

  beforeAll(async () => {
    catalog = await createTestCatalog('mariadb', 'prepare_race');
    app = await startQueueContext(catalog.url, [PrepareService], null);
    ds = app.get(DataSource);
    const d1 = await ds.getRepository(Server).save(server('r1.example.net', ['dispatcher']));
    const d2 = await ds.getRepository(Server).save(server('r2.example.net', ['dispatcher', 'database']));
    for (let i = 1; i <= 60; i++) {
      await ds.getRepository(ServerIp).save({ serverId: d1.id, ip: `10.1.0.${i}`, kind: 'dedicated', failoverGroup: null, activeServerId: null });
      await ds.getRepository(ServerIp).save({ serverId: d2.id, ip: `10.2.0.${i}`, kind: 'dedicated', failoverGroup: null, activeServerId: null });
    }
    for (const [name, limit] of [['p1', 25], ['p2', 25]] as const) {
      await ds.getRepository(SharedCodeGroup).save({ name, tier: 'paid', repoUrl: '/srv/repo', revision: 'abc', path: `/srv/${name}`, masterServerId: d1.id, installLimit: limit, installCount: 0, pinned: false, manifest: null, state: 'ready' });
    }
  });
  afterAll(async () => {
    await app?.close();
    await catalog?.drop();
  });

  it('makes exactly one install per reference, never gives an IP twice or overfills a group, and leaves nothing for refused orders', async () => {
    const prepare = app.get(PrepareService);
    const refs = Array.from({ length: 140 }, (_, i) => `R-${i}`);
    const orders = [...refs, ...Array.from({ length: 60 }, (_, i) => refs[(i * 7) % 140]!)].sort(() => Math.random() - 0.5);
    const host = (ref: string) => `${ref.toLowerCase()}-${Math.random().toString(36).slice(2, 8)}.shop.example.com`;
    const hostOf = new Map(refs.map((r) => [r, host(r)]));
    const results = await Promise.all(
      orders.map((ref) =>
        prepare
          .prepare({ orderRef: ref, customerEmail: 'race@example.com', license: 'paid', sites: [{ hostname: hostOf.get(ref)! }] } as CreateInstallDto)
          .then((r) => ({ ref, id: r.install.id, error: null as string | null }))
          .catch((e: DomainError) => ({ ref, id: null, error: e.code ?? String(e) })),
      ),
    );
    const installs = await ds.getRepository(Install).find();
    // One install per reference that succeeded; every answer for a reference names it.
    expect(new Set(installs.map((i) => i.orderRef)).size).toBe(installs.length);
    for (const r of results.filter((r) => r.id !== null)) expect(installs.find((i) => i.orderRef === r.ref)!.id).toBe(r.id);
    // 60 IPs per dispatcher, one per paid install on each: 60 installs, the rest refused by the pool.
    expect(installs).toHaveLength(60);
    expect(new Set(results.filter((r) => r.error).map((r) => r.error))).toEqual(new Set(['IP_POOL_EXHAUSTED']));
    const refused = new Set(results.filter((r) => r.error).map((r) => r.ref));
    expect(installs.some((i) => refused.has(i.orderRef))).toBe(false);
    const siteIps = await ds.getRepository(InstallSiteIp).find();
    expect(siteIps).toHaveLength(120);
    expect(new Set(siteIps.map((s) => s.serverIpId)).size).toBe(120);
    expect(await ds.getRepository(InstallSite).count()).toBe(60);
    expect(new Set(installs.map((i) => i.fsName)).size).toBe(60);
    expect(new Set(installs.map((i) => i.dbName)).size).toBe(60);
    const groups = await ds.getRepository(SharedCodeGroup).find();
    for (const g of groups) {
      expect(g.installCount).toBeLessThanOrEqual(g.installLimit);
      expect(installs.filter((i) => i.sharedCodeGroupId === g.id)).toHaveLength(g.installCount);
    }
    // 50 slots for 60 installs: ten wait for a group.
    expect(installs.filter((i) => i.sharedCodeGroupId === null)).toHaveLength(10);
  }, 120_000);
});
