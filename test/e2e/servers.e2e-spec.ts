import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { ApiTokensService } from '@app/auth';
import { AuditEventRepository } from '@app/catalog';
import { startEngine, type RunningEngine } from '../../apps/engine/src/start-engine.js';
import { createTestCatalog, testEngineConfig, type TestCatalog } from '../support/catalog.js';
import { readTestbed } from '../support/testbed.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = async (res: Response): Promise<any> => res.json();

/** The inventory through the admin API, checked against real servers: this machine and the testbed's sshd. */
describe('servers API on MariaDB', () => {
  let catalog: TestCatalog;
  let engine: RunningEngine;
  let token: string;
  let base: string;

  beforeAll(async () => {
    catalog = await createTestCatalog('mariadb', 'servers');
    engine = await startEngine(testEngineConfig(catalog.url, { ENGINE_ROLES: 'api' }));
    token = (await engine.app.get(ApiTokensService).issue('ops', ['admin'], { actor: 'test', via: 'cli' })).token;
    base = mkdtempSync(join(tmpdir(), 'servers-'));
  });
  afterAll(async () => {
    await engine?.close();
    await catalog?.drop();
    rmSync(base, { recursive: true, force: true });
  });

  const call = (method: string, path: string, body?: unknown) =>
    fetch(`${engine.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  const roots = (name: string, create = true) => {
    const dir = (r: string) => {
      const p = join(base, name, r);
      if (create) mkdirSync(p, { recursive: true });
      return p;
    };
    return { homeRoot: dir('home'), sharedCodeRoot: dir('shared_codes'), nginxConfDir: dir('nginx'), cronDir: dir('cron.d'), certsRoot: dir('certs') };
  };

  it('adds, lists, shows and updates servers, audited', async () => {
    const created = await call('POST', '/v1/servers', { hostname: 'Local1.Example.NET', roles: ['dispatcher', 'handler'], transport: 'local', ...roots('local1') });
    expect(created.status).toBe(201);
    const server = await json(created);
    expect(server).toMatchObject({ hostname: 'local1.example.net', roles: ['dispatcher', 'handler'], state: 'active', sshHost: null });
    expect((await json(await call('GET', '/v1/servers'))).map((s: { id: number }) => s.id)).toContain(server.id);
    const drained = await call('PATCH', `/v1/servers/${server.id}`, { state: 'draining' });
    expect(await json(drained)).toMatchObject({ state: 'draining' });
    const events = await engine.app.get(AuditEventRepository).latest(5);
    expect(events.map((e) => e.action)).toEqual(expect.arrayContaining(['server.create', 'server.update']));
    expect((await call('POST', '/v1/servers', { hostname: 'local1.example.net', roles: ['handler'], transport: 'local', ...roots('dup') })).status).toBe(409);
  });

  it('checks a local server item by item, and names what is missing', async () => {
    const ok = await json(await call('POST', '/v1/servers', { hostname: 'local2.example.net', roles: ['dispatcher'], transport: 'local', ...roots('local2') }));
    const check = await json(await call('POST', `/v1/servers/${ok.id}/check`));
    expect(check.items.find((i: { item: string }) => i.item === 'reachable')).toMatchObject({ ok: true });
    expect(check.items.filter((i: { item: string }) => i.item.startsWith('root ')).every((i: { ok: boolean }) => i.ok)).toBe(true);
    expect(check.items.find((i: { item: string }) => i.item === 'tool nginx')).toMatchObject({ ok: true, detail: '/usr/sbin/nginx' });
    expect(check.ok).toBe(true);

    const broken = await json(await call('POST', '/v1/servers', { hostname: 'local3.example.net', roles: ['database'], transport: 'local', ...roots('local3', false) }));
    const bad = await json(await call('POST', `/v1/servers/${broken.id}/check`));
    expect(bad.ok).toBe(false);
    expect(bad.items.find((i: { item: string }) => i.item === `root ${join(base, 'local3', 'home')}`)).toMatchObject({ ok: false, detail: 'missing or not writable' });
  });

  it('checks a server over real SSH with its pinned host key, and refuses a wrong key', async () => {
    const { sshd } = readTestbed();
    const ssh = { transport: 'ssh', sshHost: sshd.host, sshPort: sshd.port, sshUser: sshd.user, sshKeyRef: sshd.privateKeyPath };
    const good = await json(await call('POST', '/v1/servers', { hostname: 'ssh1.example.net', roles: ['handler'], ...ssh, sshHostKey: sshd.hostKeyFingerprint, ...roots('ssh1') }));
    const check = await json(await call('POST', `/v1/servers/${good.id}/check`));
    expect(check.items[0]).toMatchObject({ item: 'reachable', ok: true });
    expect(check.items.find((i: { item: string }) => i.item === 'tool php-fpm').ok).toBe(true);

    const impostor = await json(
      await call('POST', '/v1/servers', { hostname: 'ssh2.example.net', roles: ['handler'], ...ssh, sshHostKey: `SHA256:${'A'.repeat(43)}`, ...roots('ssh2') }),
    );
    const refused = await json(await call('POST', `/v1/servers/${impostor.id}/check`));
    expect(refused.ok).toBe(false);
    expect(refused.items[0].detail).toContain('host key mismatch');
  });

  it('refuses bad input precisely, creating nothing', async () => {
    const before = (await json(await call('GET', '/v1/servers'))).length;
    const res = await call('POST', '/v1/servers', {
      hostname: 'evil;rm -rf /',
      roles: ['dispatcher', 'janitor'],
      transport: 'ssh',
      sshHost: '$(id)',
      sshUser: 'Root Admin',
      sshHostKey: 'ssh-rsa AAAA',
      homeRoot: '/usr/home/../../etc',
      sharedCodeRoot: 'relative',
      nginxConfDir: '/etc/nginx/shops',
      cronDir: '/etc/cron.d',
      certsRoot: '/usr/home/certs',
      extra: true,
    });
    expect(res.status).toBe(400);
    const fields = (await json(res)).details.fields.map((f: { field: string }) => f.field).sort();
    expect(fields).toEqual(['extra', 'homeRoot', 'hostname', 'roles', 'sharedCodeRoot', 'sshHost', 'sshHostKey', 'sshUser'].sort());
    expect((await json(await call('GET', '/v1/servers'))).length).toBe(before);
  });

  it('manages the IP pool all-or-none, and refuses removing what is in use', async () => {
    const server = await json(await call('POST', '/v1/servers', { hostname: 'pool.example.net', roles: ['dispatcher'], transport: 'local', ...roots('pool') }));
    const added = await call('POST', `/v1/servers/${server.id}/ips`, { ips: ['198.51.100.10', '198.51.100.11'], kind: 'floating', failoverGroup: 'carp1' });
    expect(added.status).toBe(201);
    expect((await json(added)).map((i: { ip: string; activeServerId: number }) => [i.ip, i.activeServerId])).toEqual([
      ['198.51.100.10', server.id],
      ['198.51.100.11', server.id],
    ]);
    const dup = await call('POST', `/v1/servers/${server.id}/ips`, { ips: ['198.51.100.12', '198.51.100.10'], kind: 'shared' });
    expect(dup.status).toBe(409);
    expect((await json(await call('GET', `/v1/servers/${server.id}/ips`))).length).toBe(2);
    expect((await call('POST', `/v1/servers/${server.id}/ips`, { ips: ['not-an-ip'], kind: 'shared' })).status).toBe(400);
    expect((await call('DELETE', `/v1/servers/${server.id}/ips/198.51.100.11`)).status).toBe(204);

    // An install mastered on the server keeps it from being removed.
    const db = engine.app.get(DataSource);
    await db.query(
      `INSERT INTO installs (order_ref, customer_email, license, fs_name, db_name, db_user, db_password_enc, master_server_id, status)
       VALUES ('o-1', 'c@example.com', 'free', 'shop1', 'shop1', 'shop1', 'x', ?, 'live')`,
      [server.id],
    );
    const refused = await call('DELETE', `/v1/servers/${server.id}`);
    expect(refused.status).toBe(409);
    expect(await json(refused)).toMatchObject({ code: 'SERVER_IN_USE', details: { installs: 1 } });
    await db.query(`DELETE FROM installs WHERE order_ref = 'o-1'`);
    expect((await call('DELETE', `/v1/servers/${server.id}`)).status).toBe(204);
    expect((await call('GET', `/v1/servers/${server.id}`)).status).toBe(404);
  });
});
