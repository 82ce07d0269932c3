import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { ApiTokensService } from '@app/auth';
import { AuditEvent, Install, InstallServer, Job, Server } from '@app/catalog';
import { startEngine, type RunningEngine } from '../../apps/engine/src/start-engine.js';
import { createTestCatalog, testEngineConfig, type TestCatalog } from '../support/catalog.js';
import { testServer } from '../support/server-roots.js';
import { codeGroupFor, seedWebInstalls } from '../support/web-installs.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = async (res: Response): Promise<any> => res.json();

/**
 * The cloud-handler API over HTTP, on MariaDB, without a worker: what it
 * refuses (bad bodies, refused removals) changes nothing; what it accepts
 * is one transaction with its job. The sagas themselves are proved in
 * test/integration/cloud-handlers.int-spec.ts and the e2e proof.
 */
describe('cloud-handler API on MariaDB', () => {
  let catalog: TestCatalog;
  let engine: RunningEngine;
  let admin: string;
  let support: string;
  let dir: string;
  let ds: DataSource;
  let dispatcher: Server;
  let cloud: Server;
  let managedCloud: Server;
  let noIp: Server;
  let elsewhere: Server;
  let dbOnly: Server;
  let install: Install;
  let building: Install;

  beforeAll(async () => {
    catalog = await createTestCatalog('mariadb', 'cloudapi');
    engine = await startEngine(testEngineConfig(catalog.url, { ENGINE_ROLES: 'api' }));
    const tokens = engine.app.get(ApiTokensService);
    admin = (await tokens.issue('ops', ['admin'], { actor: 'test', via: 'cli' })).token;
    support = (await tokens.issue('desk', ['support'], { actor: 'test', via: 'cli' })).token;
    dir = mkdtempSync(join(tmpdir(), 'cloudapi-'));
    ds = engine.app.get(DataSource);
    const servers = ds.getRepository(Server);
    dispatcher = await servers.save(servers.create(testServer(join(dir, 'd1'), 'd1.cloudapi.test', ['dispatcher', 'handler'], null, { privateIp: '127.0.106.11' })));
    // A handler holds the install at the dispatcher's paths (nginx passes it the script's path there).
    const layout = { homeRoot: dispatcher.homeRoot, sharedCodeRoot: dispatcher.sharedCodeRoot };
    elsewhere = await servers.save(servers.create(testServer(join(dir, 'c4'), 'c4.cloudapi.test', ['cloud'], null, { privateIp: '127.0.106.23' })));
    cloud = await servers.save(servers.create(testServer(join(dir, 'c1'), 'c1.cloudapi.test', ['cloud'], null, { privateIp: '127.0.106.21', ...layout })));
    // Managed PHP over SSH (the embedded default's local machine never is): its pools listen on TCP ports.
    managedCloud = await servers.save(
      servers.create(testServer(join(dir, 'c2'), 'c2.cloudapi.test', ['cloud'], null, { privateIp: '127.0.106.22', transport: 'ssh', sshHost: '127.0.106.22', sshPort: 22, sshUser: 'root', phpFpmPoolDir: join(dir, 'c2/pools'), ...layout })),
    );
    noIp = await servers.save(servers.create(testServer(join(dir, 'c3'), 'c3.cloudapi.test', ['cloud'], null, layout)));
    dbOnly = await servers.save(servers.create(testServer(join(dir, 'db'), 'db.cloudapi.test', ['database'], null, { privateIp: '127.0.106.31' })));
    const group = await codeGroupFor(ds, dispatcher);
    [install, building] = await seedWebInstalls(
      ds,
      dispatcher,
      group,
      [
        { fsName: 'cloudapione', hostname: 'one.cloudapi.test', ip: '127.0.106.101' },
        { fsName: 'cloudapitwo', hostname: 'two.cloudapi.test', ip: '127.0.106.102' },
      ],
      { homes: false },
    );
    await ds.getRepository(Install).update({ id: building!.id }, { status: 'building' });
  });
  afterAll(async () => {
    await engine?.close();
    await catalog?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  const call = (method: string, path: string, body?: unknown, token = admin) =>
    fetch(`${engine.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  /** What a refused request must leave as it was. */
  const snapshot = async () => ({
    rows: (await ds.getRepository(InstallServer).find({ order: { id: 'ASC' } })).map((r) => [r.installId, r.serverId, r.role, r.state, r.weight, r.poolPort]),
    jobs: await ds.getRepository(Job).count(),
    servers: (await ds.getRepository(Server).find({ order: { id: 'ASC' } })).map((s) => [s.id, s.state, s.leaseExpiresAt?.toISOString() ?? null]),
  });
  const refused = async (res: Response, status: number, code: string) => {
    const body = await json(res);
    expect({ status: res.status, code: body.code }).toEqual({ status, code });
    return body;
  };

  it('refuses bad bodies and a scope short of admin, changing nothing', async () => {
    const before = await snapshot();
    const path = `/v1/installs/${install.id}/handlers`;
    for (const body of [{}, { serverId: 'seven' }, { serverId: 0 }, { serverId: cloud.id, weight: 101 }, { serverId: cloud.id, weight: -1 }, { serverId: cloud.id, weight: 1.5 }, { serverId: cloud.id, role: 'master' }]) {
      await refused(await call('POST', path, body), 400, 'VALIDATION_FAILED');
    }
    await refused(await call('POST', path, { serverId: cloud.id }, support), 403, 'FORBIDDEN');
    await refused(await call('PATCH', `${path}/${dispatcher.id}`, { weight: 1000 }), 400, 'VALIDATION_FAILED');
    await refused(await call('PATCH', `${path}/${dispatcher.id}`, {}), 400, 'VALIDATION_FAILED');
    await refused(await call('PUT', `${path}/clouds-only`, { enabled: 'yes' }), 400, 'VALIDATION_FAILED');
    await refused(await call('PATCH', `/v1/cloud-servers/${cloud.id}`, { leaseExpiresAt: 'next tuesday' }), 400, 'VALIDATION_FAILED');
    await refused(await call('PATCH', `/v1/cloud-servers/${cloud.id}`, {}), 400, 'VALIDATION_FAILED');
    await refused(await call('PATCH', `/v1/cloud-servers/${cloud.id}`, { leaseExpiresAt: '2001-01-01T00:00:00Z' }), 400, 'LEASE_IN_PAST');
    expect((await call('POST', `/v1/installs/abc/handlers`, { serverId: cloud.id })).status).toBe(400);
    expect(await snapshot()).toEqual(before);
  });

  it('refuses additions that cannot work, changing nothing', async () => {
    const before = await snapshot();
    const path = `/v1/installs/${install.id}/handlers`;
    await refused(await call('POST', '/v1/installs/999999/handlers', { serverId: cloud.id }), 404, 'NOT_FOUND');
    await refused(await call('POST', `/v1/installs/${building.id}/handlers`, { serverId: cloud.id }), 409, 'INSTALL_NOT_LIVE');
    await refused(await call('POST', path, { serverId: 999999 }), 404, 'NOT_FOUND');
    await refused(await call('POST', path, { serverId: dbOnly.id }), 409, 'NOT_A_HANDLER_SERVER');
    await refused(await call('POST', path, { serverId: noIp.id }), 409, 'SERVER_HAS_NO_PRIVATE_IP');
    await refused(await call('POST', path, { serverId: elsewhere.id }), 409, 'HANDLER_LAYOUT_DIFFERS');
    await refused(await call('POST', path, { serverId: dispatcher.id }), 409, 'HANDLER_EXISTS');
    await ds.getRepository(Server).update({ id: cloud.id }, { state: 'draining' });
    await refused(await call('POST', path, { serverId: cloud.id }), 409, 'SERVER_NOT_ACTIVE');
    await ds.getRepository(Server).update({ id: cloud.id }, { state: 'active' });
    expect(await snapshot()).toEqual(before);
  });

  it('refuses clouds only and a backup-only master while the install has no cloud', async () => {
    const before = await snapshot();
    await refused(await call('PUT', `/v1/installs/${install.id}/handlers/clouds-only`, { enabled: true }), 409, 'NO_ACTIVE_CLOUD');
    await refused(await call('PATCH', `/v1/installs/${install.id}/handlers/${dispatcher.id}`, { weight: 0 }), 409, 'NO_ACTIVE_CLOUD');
    await refused(await call('PATCH', `/v1/installs/${install.id}/handlers/${cloud.id}`, { weight: 2 }), 404, 'NOT_FOUND');
    expect(await snapshot()).toEqual(before);
  });

  it('accepts an addition as one transaction: the row adding, a pool port on a managed TCP handler, the saga job, audited', async () => {
    const res = await call('POST', `/v1/installs/${install.id}/handlers`, { serverId: managedCloud.id, weight: 3 });
    expect(res.status).toBe(202);
    const body = await json(res);
    expect(body.handler).toMatchObject({ serverId: managedCloud.id, role: 'cloud', state: 'adding', weight: 3, poolPort: 20000 });
    const job = await ds.getRepository(Job).findOneByOrFail({ id: body.jobId });
    expect({ kind: job.kind, payload: job.payload, resourceKey: job.resourceKey }).toEqual({ kind: 'install.handler-add', payload: { installId: install.id, serverId: managedCloud.id }, resourceKey: `install:${install.id}` });
    // Unmanaged PHP (the shared pool the company runs): no port of its own.
    const plain = await json(await call('POST', `/v1/installs/${install.id}/handlers`, { serverId: cloud.id }));
    expect(plain.handler).toMatchObject({ state: 'adding', weight: 1, poolPort: null });
    const listed = await json(await call('GET', `/v1/installs/${install.id}/handlers`));
    expect(listed.map((h: { hostname: string; role: string; state: string }) => [h.hostname, h.role, h.state])).toEqual([
      ['d1.cloudapi.test', 'master', 'active'],
      ['c2.cloudapi.test', 'cloud', 'adding'],
      ['c1.cloudapi.test', 'cloud', 'adding'],
    ]);
    const audit = await ds.getRepository(AuditEvent).find({ where: { action: 'install.handler.add' } });
    expect(audit.map((a) => [a.actor, a.via, a.targetId])).toEqual([
      ['token:ops', 'api', String(install.id)],
      ['token:ops', 'api', String(install.id)],
    ]);
  });

  it('refuses removals: the master, a handler still being added, the only handler, a cloud not drained', async () => {
    const path = `/v1/installs/${install.id}/handlers`;
    const before = await snapshot();
    await refused(await call('DELETE', `${path}/${dispatcher.id}`), 409, 'HANDLER_IS_MASTER');
    await refused(await call('DELETE', `${path}/${cloud.id}`), 409, 'HANDLER_BUSY');
    await refused(await call('DELETE', `${path}/${dbOnly.id}`), 404, 'NOT_FOUND');
    await refused(await call('DELETE', `/v1/cloud-servers/${cloud.id}`), 409, 'SERVER_NOT_DRAINED');
    await refused(await call('POST', `/v1/cloud-servers/${dispatcher.id}/drain`), 409, 'NOT_A_CLOUD_SERVER');
    expect(await snapshot()).toEqual(before);

    // The cloud serving while its master is down: it is the install's only active handler.
    await ds.getRepository(InstallServer).update({ installId: install.id, serverId: cloud.id }, { state: 'active' });
    await ds.getRepository(Server).update({ id: dispatcher.id }, { state: 'down' });
    const alone = await snapshot();
    const only = await refused(await call('DELETE', `${path}/${cloud.id}`), 409, 'ONLY_HANDLER');
    expect(only.details).toEqual({ serverId: cloud.id, installIds: [install.id] });
    await refused(await call('POST', `/v1/cloud-servers/${cloud.id}/drain`), 409, 'ONLY_HANDLER');
    expect(await snapshot()).toEqual(alone);
    await ds.getRepository(Server).update({ id: dispatcher.id }, { state: 'active' });
  });

  it('sets weights and clouds only, each with the nginx rebuild of the install\'s dispatchers', async () => {
    const path = `/v1/installs/${install.id}/handlers`;
    const rebuilds = () => ds.getRepository(Job).count({ where: { kind: 'nginx.rebuild' } });
    expect(await json(await call('PATCH', `${path}/${cloud.id}`, { weight: 5 }))).toMatchObject({ serverId: cloud.id, weight: 5 });
    expect(await rebuilds()).toBe(1);
    const on = await json(await call('PUT', `${path}/clouds-only`, { enabled: true }));
    expect(on.map((h: { role: string; weight: number }) => [h.role, h.weight])).toEqual([['master', 0], ['cloud', 3], ['cloud', 5]]);
    // The last cloud with a weight may not go to 0 while the master is a backup.
    await refused(await call('PATCH', `${path}/${cloud.id}`, { weight: 0 }), 409, 'NO_ACTIVE_CLOUD');
    const off = await json(await call('PUT', `${path}/clouds-only`, { enabled: false }));
    expect(off.map((h: { role: string; weight: number }) => [h.role, h.weight])).toEqual([['master', 1], ['cloud', 3], ['cloud', 5]]);
    const actions = (await ds.getRepository(AuditEvent).find({ order: { id: 'ASC' } })).map((a) => a.action);
    expect(actions).toEqual(expect.arrayContaining(['install.handler.weight', 'install.handler.clouds-only']));
  });

  it('takes a cloud off: row removing, clouds only undone when no cloud is left, the removal job', async () => {
    await ds.getRepository(InstallServer).delete({ installId: install.id, serverId: managedCloud.id });
    await call('PUT', `/v1/installs/${install.id}/handlers/clouds-only`, { enabled: true });
    const res = await call('DELETE', `/v1/installs/${install.id}/handlers/${cloud.id}`);
    expect(res.status).toBe(202);
    const { jobId } = await json(res);
    expect((await ds.getRepository(Job).findOneByOrFail({ id: jobId })).kind).toBe('install.handler-remove');
    const rows = await ds.getRepository(InstallServer).find({ where: { installId: install.id }, order: { id: 'ASC' } });
    expect(rows.map((r) => [r.role, r.state, r.weight])).toEqual([['master', 'active', 1], ['cloud', 'removing', 5]]);
    await refused(await call('DELETE', `/v1/installs/${install.id}/handlers/${cloud.id}`), 409, 'HANDLER_BUSY');
  });

  it('leases a cloud, clearing the reminder; drains it; removes it only once drained', async () => {
    const when = new Date(Date.now() + 3 * 86_400_000);
    await ds.getRepository(Server).update({ id: managedCloud.id }, { leaseRemindedAt: new Date() });
    const leased = await json(await call('PATCH', `/v1/cloud-servers/${managedCloud.id}`, { leaseExpiresAt: when.toISOString() }));
    expect(leased).toMatchObject({ id: managedCloud.id, leaseExpiresAt: new Date(Math.floor(when.getTime() / 1000) * 1000).toISOString(), leaseRemindedAt: null });
    expect((await json(await call('PATCH', `/v1/cloud-servers/${managedCloud.id}`, { leaseExpiresAt: null }))).leaseExpiresAt).toBeNull();

    const drained = await call('POST', `/v1/cloud-servers/${managedCloud.id}/drain`);
    expect(drained.status).toBe(202);
    expect((await ds.getRepository(Job).findOneByOrFail({ id: (await json(drained)).jobId })).kind).toBe('cloud-server.drain');
    expect((await json(await call('GET', `/v1/cloud-servers/${managedCloud.id}`))).state).toBe('draining');
    await refused(await call('POST', `/v1/cloud-servers/${managedCloud.id}/drain`), 409, 'SERVER_DRAINING');
    const removed = await call('DELETE', `/v1/cloud-servers/${managedCloud.id}`);
    expect(removed.status).toBe(202);
    expect(await json(removed)).toMatchObject({ handlerJobs: [] });
    const actions = (await ds.getRepository(AuditEvent).find({ where: { targetType: 'server', targetId: String(managedCloud.id) }, order: { id: 'ASC' } })).map((a) => a.action);
    expect(actions).toEqual(['cloud-server.lease', 'cloud-server.lease', 'cloud-server.drain', 'cloud-server.remove']);
  });
});
