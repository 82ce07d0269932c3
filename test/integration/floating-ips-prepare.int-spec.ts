import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { INestApplicationContext, Type } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { FailoverNode, Install, InstallSiteIp, Server, ServerIp, SharedCodeGroup, type NewServer } from '@app/catalog';
import { DomainError } from '@app/common';
import { HostsModule } from '@app/hosts';
import { PrepareService, type CreateInstallDto } from '@app/installs';
import { DispatcherInputLoader, WebserverModule } from '@app/webserver';
import { THIRD_PARTY_SHOP_MANIFEST } from '../support/third-party-shop.js';
import { CATALOG_KINDS, createTestCatalog, type TestCatalog } from '../support/catalog.js';
import { startQueueContext } from '../support/queue-context.js';
import { testServer } from '../support/server-roots.js';

const scratch = mkdtempSync(join(tmpdir(), 'floating-prepare-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
const server = (hostname: string, roles: NewServer['roles']): NewServer => testServer(join(scratch, hostname), hostname, roles, null);

/** Paid installs get a floating IP per dispatcher from the dispatcher's own failover group. */
describe.each(CATALOG_KINDS)('floating IPs at prepare (%s)', (kind) => {
  let catalog: TestCatalog;
  let app: INestApplicationContext;
  let ds: DataSource;
  let prepare: PrepareService;
  const ids: Record<string, number> = {};
  const order = (ref: string, license: 'free' | 'paid', hostnames: string[]): CreateInstallDto =>
    ({ orderRef: ref, customerEmail: 'owner@example.com', license, sites: hostnames.map((hostname) => ({ hostname })) }) as CreateInstallDto;
  const addIps = async (serverId: number, kind: ServerIp['kind'], prefix: string, n: number, failoverGroup: string | null) => {
    for (let i = 1; i <= n; i++) await ds.getRepository(ServerIp).save({ serverId, ip: `${prefix}.${i}`, kind, failoverGroup, activeServerId: kind === 'floating' ? serverId : null });
  };
  const ipsOf = async (installId: number) =>
    (await ds.getRepository(InstallSiteIp).find({ relations: { serverIp: true, installSite: true } }))
      .filter((r) => r.installSite!.installId === installId)
      .map((r) => ({ server: r.serverId, ip: r.serverIp!.ip, kind: r.serverIp!.kind, group: r.serverIp!.failoverGroup, exclusive: r.exclusiveIpId === r.serverIpId }))
      .sort((a, b) => a.server - b.server);

  beforeAll(async () => {
    catalog = await createTestCatalog(kind, 'floatprep');
    app = await startQueueContext(catalog.url, [PrepareService], null, [HostsModule.forRoot({ http: false }), WebserverModule] as unknown as Type[]);
    ds = app.get(DataSource);
    prepare = app.get(PrepareService);
    for (const [name, roles] of [
      ['d1', ['dispatcher', 'handler']],
      ['d2', ['dispatcher', 'handler']],
      ['db', ['database']],
    ] as const) {
      ids[name] = (await ds.getRepository(Server).save(server(`${name}.example.net`, [...roles]))).id;
    }
    // d1 and d2 each own a failover group (the seed's carp1 and carp2), and have dedicated and shared IPs too.
    await addIps(ids.d1!, 'floating', '10.200.10', 2, 'carp1');
    await addIps(ids.d2!, 'floating', '10.200.20', 1, 'carp2');
    await addIps(ids.d1!, 'dedicated', '10.0.1', 3, null);
    await addIps(ids.d2!, 'dedicated', '10.0.2', 3, null);
    await addIps(ids.d1!, 'shared', '10.0.9', 1, null);
    await ds.getRepository(SharedCodeGroup).save({ name: 'paid-1', tier: 'paid', repoUrl: '/srv/repo', revision: 'abc', path: '/srv/paid-1', masterServerId: ids.d1!, installLimit: 10, installCount: 0, pinned: false, manifest: THIRD_PARTY_SHOP_MANIFEST as never, state: 'ready' });
    await ds.getRepository(SharedCodeGroup).save({ name: 'free-1', tier: 'free', repoUrl: '/srv/repo', revision: 'abc', path: '/srv/free-1', masterServerId: ids.d1!, installLimit: 10, installCount: 0, pinned: false, manifest: null, state: 'ready' });
  });
  afterAll(async () => {
    await app?.close();
    await catalog?.drop();
  });

  it('gives a paid install one floating IP of each dispatcher’s own group, held exclusively, and marks it dynamic', async () => {
    const { install } = await prepare.prepare(order('F-1', 'paid', ['www.floating-one.com']));
    expect(install.dynamicIps).toBe(true);
    expect((await ds.getRepository(Install).findOneByOrFail({ id: install.id })).dynamicIps).toBe(true);
    const ips = await ipsOf(install.id);
    expect(ips).toHaveLength(2);
    expect(ips[0]).toMatchObject({ server: ids.d1, kind: 'floating', group: 'carp1', exclusive: true });
    expect(ips[0]!.ip).toMatch(/^10\.200\.10\.[12]$/);
    expect(ips[1]).toEqual({ server: ids.d2, ip: '10.200.20.1', kind: 'floating', group: 'carp2', exclusive: true });
  });

  it('never gives a floating IP twice: the group with none left refuses the order, naming it, and records nothing', async () => {
    await expect(prepare.prepare(order('F-2', 'paid', ['www.floating-two.com']))).rejects.toMatchObject({ code: 'IP_POOL_EXHAUSTED', details: { server: 'd2.example.net', kind: 'floating' } } satisfies Partial<DomainError>);
    expect(await ds.getRepository(Install).countBy({ orderRef: 'F-2' })).toBe(0);
  });

  it('keeps dedicated IPs on a dispatcher without a failover group, and free installs on the shared IP', async () => {
    ids.d3 = (await ds.getRepository(Server).save(server('d3.example.net', ['dispatcher']))).id;
    await addIps(ids.d3, 'dedicated', '10.0.3', 1, null);
    await addIps(ids.d2!, 'floating', '10.200.21', 1, 'carp2');
    const { install } = await prepare.prepare(order('F-3', 'paid', ['www.floating-three.com']));
    const ips = await ipsOf(install.id);
    expect(ips.map((r) => [r.server, r.kind, r.ip])).toEqual([
      [ids.d1, 'floating', expect.stringMatching(/^10\.200\.10\.[12]$/)],
      [ids.d2, 'floating', '10.200.21.1'],
      [ids.d3, 'dedicated', '10.0.3.1'],
    ]);
    expect(install.dynamicIps).toBe(true);
    const free = await prepare.prepare({ ...order('F-4', 'free', ['www.free-one.com']), serverId: ids.d1 } as CreateInstallDto);
    expect(free.install.dynamicIps).toBe(false);
    expect((await ipsOf(free.install.id)).map((r) => [r.kind, r.ip])).toEqual([['shared', '10.0.9.1']]);
  });

  it('has nginx on a failover node listen on the install’s floating IPs of the other dispatchers too, so a moved IP serves without a rebuild', async () => {
    const install = await ds.getRepository(Install).findOneByOrFail({ orderRef: 'F-1' });
    await ds.getRepository(Install).update({ id: install.id }, { status: 'live' });
    const loader = app.get(DispatcherInputLoader);
    const ipsOn = async (serverId: number) => {
      const input = await loader.load(await ds.getRepository(Server).findOneByOrFail({ id: serverId }), install.id);
      return [...input.installs[0]!.sites[0]!.ips].sort();
    };
    const own = (await ipsOf(install.id)).map((r) => r.ip);
    expect(await ipsOn(ids.d1!)).toEqual([own[0]]);
    await ds.getRepository(FailoverNode).save({ serverId: ids.d1!, interface: 'eth0', confDir: '/etc/keepalived', pidFile: null });
    expect(await ipsOn(ids.d1!)).toEqual([...own].sort());
    // d2 is no failover node: only its own IP.
    expect(await ipsOn(ids.d2!)).toEqual([own[1]]);
  });
});
