import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { InstallServer, Job, Server, SharedCodeGroup } from '@app/catalog';
import { CloudLeases, CloudServersService } from '@app/cloud-handlers';
import { SAMPLE_MANIFEST } from '@app/codebases';
import { InventoryService } from '@app/hosts';
import { startEngine, type RunningEngine } from '../../apps/engine/src/start-engine.js';
import { createTestCatalog, testEngineConfig, type TestCatalog } from '../support/catalog.js';
import { testServer } from '../support/server-roots.js';
import { startSmtp, type TestSmtp } from '../support/smtp.js';
import { readTestbed } from '../support/testbed.js';
import { codeGroupFor, seedWebInstalls } from '../support/web-installs.js';

const HOUR = 3_600_000;

/**
 * Cloud servers against real parts: the server check over the testbed's
 * sshd (php-fpm, the code groups' PHP, a listener on the cloud's private
 * IP reached from each dispatcher's private IP), and the lease reminder
 * through a real SMTP server, on MariaDB. No worker: the drain at expiry
 * is asserted as its state and job.
 */
describe('cloud servers: check and leases (sshd, SMTP, MariaDB)', () => {
  let catalog: TestCatalog;
  let smtp: TestSmtp;
  let engine: RunningEngine;
  let ds: DataSource;
  let dir: string;
  const servers: Record<string, Server> = {};

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cloud-servers-'));
    [catalog, smtp] = await Promise.all([createTestCatalog('mariadb', 'cloud_servers'), startSmtp()]);
    engine = await startEngine(testEngineConfig(catalog.url, { ENGINE_ROLES: 'api', SMTP_URL: smtp.url, OPS_EMAIL: 'ops@example.net' }));
    ds = engine.app.get(DataSource);
    const { sshd } = readTestbed();
    const save = async (name: string, roles: Server['roles'], privateIp: string | null) =>
      (servers[name] = await ds.getRepository(Server).save(testServer(join(dir, name), `${name}.cloudsrv.test`, roles, sshd, { privateIp })));
    await save('d1', ['dispatcher', 'handler'], '127.0.106.51');
    await save('d2', ['dispatcher', 'handler'], '127.0.106.52');
    await save('c1', ['cloud'], '127.0.106.61');
  });
  afterAll(async () => {
    await engine?.close();
    await Promise.all([catalog?.drop(), smtp?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it("checks a cloud item by item: php-fpm, each ready group's PHP, reachability from each dispatcher's private IP", async () => {
    const ok = { ...JSON.parse(JSON.stringify(SAMPLE_MANIFEST)), php: { extensions: ['pcre', 'json'] } };
    const missing = { ...JSON.parse(JSON.stringify(SAMPLE_MANIFEST)), php: { extensions: ['pcre', 'nosuchextension'] } };
    for (const [name, manifest] of [['fine', ok], ['needy', missing]] as const) {
      await ds.getRepository(SharedCodeGroup).save({ name, tier: 'paid', repoUrl: '/nonexistent', revision: null, path: join(dir, name), masterServerId: servers.d1!.id, installLimit: 10, installCount: 0, pinned: false, manifest, state: 'ready' } as unknown as SharedCodeGroup);
    }
    const report = await engine.app.get(InventoryService).check(servers.c1!.id);
    const item = (name: string) => report.items.find((i) => i.item === name);
    expect(item('tool php-fpm')).toMatchObject({ ok: true });
    expect(item('php for code group fine')).toMatchObject({ ok: true });
    expect(item('php for code group needy')).toMatchObject({ ok: false });
    expect(item('php for code group needy')!.detail).toContain('nosuchextension');
    expect(item('reachable from d1.cloudsrv.test')).toMatchObject({ ok: true });
    expect(item('reachable from d1.cloudsrv.test')!.detail).toMatch(/^127\.0\.106\.51 → 127\.0\.106\.61:\d+ answered$/);
    expect(item('reachable from d2.cloudsrv.test')).toMatchObject({ ok: true });
    expect(report.ok).toBe(false);
    await ds.getRepository(SharedCodeGroup).delete({ name: 'needy' });
    expect((await engine.app.get(InventoryService).check(servers.c1!.id)).ok).toBe(true);
  });

  it('names a dispatcher whose private IP cannot reach the cloud, and a cloud without a private IP', async () => {
    // 192.0.2.0/24 is TEST-NET-1: no interface here has it, so nothing can connect from it.
    await ds.getRepository(Server).update({ id: servers.d2!.id }, { privateIp: '192.0.2.7' });
    const report = await engine.app.get(InventoryService).check(servers.c1!.id);
    expect(report.items.find((i) => i.item === 'reachable from d1.cloudsrv.test')).toMatchObject({ ok: true });
    const bad = report.items.find((i) => i.item === 'reachable from d2.cloudsrv.test')!;
    expect(bad.ok).toBe(false);
    expect(bad.detail).toMatch(/^192\.0\.2\.7 → 127\.0\.106\.61:\d+: no connection/);
    await ds.getRepository(Server).update({ id: servers.d2!.id }, { privateIp: '127.0.106.52' });

    await ds.getRepository(Server).update({ id: servers.c1!.id }, { privateIp: null });
    const none = await engine.app.get(InventoryService).check(servers.c1!.id);
    expect(none.items.find((i) => i.item === 'reachable from dispatchers')).toMatchObject({ ok: false });
    await ds.getRepository(Server).update({ id: servers.c1!.id }, { privateIp: '127.0.106.61' });
    // A dispatcher is not checked for reachability from the others (its pools are its own nginx's).
    expect((await engine.app.get(InventoryService).check(servers.d1!.id)).items.some((i) => i.item.startsWith('reachable from'))).toBe(false);
  });

  it('mails operations once 24 h before the lease ends, again after an extension, and drains the cloud at the end', async () => {
    const leases = engine.app.get(CloudLeases);
    const clouds = engine.app.get(CloudServersService);
    const by = { actor: 'test', via: 'cli' as const };
    const t0 = new Date(Math.ceil(Date.now() / 1000) * 1000 + HOUR);
    const end = new Date(t0.getTime() + 48 * HOUR);
    await clouds.setLease(servers.c1!.id, end, by, t0);

    // 48 h before: nothing yet.
    expect(await leases.sweep(t0)).toEqual({ reminded: [], drained: [], refused: [] });
    expect(smtp.received).toHaveLength(0);
    // 23 h before: one mail to OPS_EMAIL; the next run sends none.
    const t1 = new Date(end.getTime() - 23 * HOUR);
    expect((await leases.sweep(t1)).reminded).toEqual([servers.c1!.id]);
    expect((await leases.sweep(new Date(t1.getTime() + 60_000))).reminded).toEqual([]);
    expect(smtp.received).toHaveLength(1);
    expect(smtp.received[0]!.to).toEqual(['ops@example.net']);
    expect(smtp.received[0]!.raw).toContain(`Subject: Cloud server c1.cloudsrv.test: lease ends ${end.toISOString()}`);
    expect(smtp.received[0]!.raw).toContain(`cloud:lease ${servers.c1!.id}`);

    // Extended: the reminder comes again for the new end, and the old end drains nothing.
    const later = new Date(end.getTime() + 72 * HOUR);
    await clouds.setLease(servers.c1!.id, later, by, t1);
    expect((await ds.getRepository(Server).findOneByOrFail({ id: servers.c1!.id })).leaseRemindedAt).toBeNull();
    expect(await leases.sweep(new Date(end.getTime() + 60_000))).toEqual({ reminded: [], drained: [], refused: [] });
    expect((await leases.sweep(new Date(later.getTime() - HOUR))).reminded).toEqual([servers.c1!.id]);
    expect(smtp.received).toHaveLength(2);
    expect(smtp.received[1]!.raw).toContain(later.toISOString());

    // At the end: drained (state and the job waiting for the dispatchers), once.
    expect((await leases.sweep(new Date(later.getTime() + 1000))).drained).toEqual([servers.c1!.id]);
    expect((await ds.getRepository(Server).findOneByOrFail({ id: servers.c1!.id })).state).toBe('draining');
    expect(await ds.getRepository(Job).count({ where: { kind: 'cloud-server.drain' } })).toBe(1);
    expect(await leases.sweep(new Date(later.getTime() + 61_000))).toEqual({ reminded: [], drained: [], refused: [] });
    expect(smtp.received).toHaveLength(2);
  });

  it('does not drain at expiry a cloud that is the only active handler of an install', async () => {
    const clouds = engine.app.get(CloudServersService);
    const c2 = await ds.getRepository(Server).save(testServer(join(dir, 'c2'), 'c2.cloudsrv.test', ['cloud'], readTestbed().sshd, { privateIp: '127.0.106.62' }));
    const [install] = await seedWebInstalls(ds, servers.d1!, await codeGroupFor(ds, servers.d1!), [{ fsName: 'cloudsrvone', hostname: 'one.cloudsrv.test', ip: '127.0.106.111' }], { homes: false });
    await ds.getRepository(InstallServer).save({ installId: install!.id, serverId: c2.id, role: 'cloud', weight: 1, poolPort: null, state: 'active' });
    await ds.getRepository(Server).update({ id: servers.d1!.id }, { state: 'down' });
    const end = new Date(Math.ceil(Date.now() / 1000) * 1000 + HOUR);
    await clouds.setLease(c2.id, end, { actor: 'test', via: 'cli' });
    const sweep = await engine.app.get(CloudLeases).sweep(new Date(end.getTime() + 1000));
    expect(sweep.refused).toEqual([c2.id]);
    expect((await ds.getRepository(Server).findOneByOrFail({ id: c2.id })).state).toBe('active');
  });
});
