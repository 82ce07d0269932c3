import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { ApiTokensService } from '@app/auth';
import { Job, SharedCodeGroup } from '@app/catalog';
import { buildSampleRepository, SAMPLE_MANIFEST, type SampleRepository } from '@app/codebases';
import { startEngine, type RunningEngine } from '../../apps/engine/src/start-engine.js';
import { createTestCatalog, testEngineConfig, type TestCatalog } from '../support/catalog.js';
import { eventually } from '../support/queue-context.js';
import { startSshd, stopSshd } from '../support/sshd.js';
import { readTestbed, type SshdServer } from '../support/testbed.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = async (res: Response): Promise<any> => res.json();

/**
 * Code groups through the admin API, cloned by a real worker with real git
 * on an SSH test server and synced with rsync to a second one.
 */
describe('code groups on MariaDB, two SSH dispatchers', () => {
  let catalog: TestCatalog;
  let engine: RunningEngine;
  let token: string;
  let base: string;
  let repo: SampleRepository;
  let second: SshdServer;
  const ids: Record<string, number> = {};

  const call = (method: string, path: string, body?: unknown) =>
    fetch(`${engine.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  const roots = (name: string) => {
    const dir = (r: string) => {
      const p = join(base, name, r);
      mkdirSync(p, { recursive: true });
      return p;
    };
    return { homeRoot: dir('home'), sharedCodeRoot: dir('shared_codes'), nginxConfDir: dir('nginx'), cronDir: dir('cron.d'), certsRoot: dir('certs') };
  };
  const sshServer = (sshd: SshdServer) => ({
    transport: 'ssh',
    sshHost: sshd.host,
    sshPort: sshd.port,
    sshUser: sshd.user,
    sshKeyRef: sshd.privateKeyPath,
    sshHostKey: sshd.hostKeyFingerprint,
  });
  const counts = async () => {
    const ds = engine.app.get(DataSource);
    return { groups: await ds.getRepository(SharedCodeGroup).count(), jobs: await ds.getRepository(Job).count() };
  };
  const group = (id: number) => engine.app.get(DataSource).getRepository(SharedCodeGroup).findOneByOrFail({ id });
  const job = (id: number) => engine.app.get(DataSource).getRepository(Job).findOneByOrFail({ id });

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'code-groups-'));
    chmodSync(base, 0o755);
    [catalog, second, repo] = await Promise.all([
      createTestCatalog('mariadb', 'code_groups'),
      startSshd(join(base, 'sshd-2'), '127.0.0.6'),
      buildSampleRepository(join(base, 'repo')),
    ]);
    engine = await startEngine(testEngineConfig(catalog.url, { ENGINE_ROLES: 'api,worker' }));
    token = (await engine.app.get(ApiTokensService).issue('ops', ['admin'], { actor: 'test', via: 'cli' })).token;
    const add = async (name: string, body: object) => {
      const res = await call('POST', '/v1/servers', body);
      expect(res.status).toBe(201);
      ids[name] = (await json(res)).id;
    };
    await add('d1', { hostname: 'dispatch1.example.net', roles: ['dispatcher'], ...sshServer(readTestbed().sshd), ...roots('d1') });
    await add('d2', { hostname: 'dispatch2.example.net', roles: ['dispatcher', 'handler'], ...sshServer(second), ...roots('d2') });
    await add('db', { hostname: 'db1.example.net', roles: ['database'], transport: 'local', ...roots('db') });
  });
  afterAll(async () => {
    await engine?.close();
    await catalog?.drop();
    if (second) await stopSshd(second);
    rmSync(base, { recursive: true, force: true });
  });

  it('clones the group at its revision on the master, reads its manifest and syncs it to the other dispatcher', async () => {
    const res = await call('POST', '/v1/code-groups', { name: 'paid-1', tier: 'paid', repoUrl: repo.path, revision: repo.revisions[0], masterServerId: ids.d1, installLimit: 50 });
    expect(res.status).toBe(202);
    const created = await json(res);
    expect(created).toMatchObject({ group: { name: 'paid-1', state: 'pending', revision: null, path: join(base, 'd1/shared_codes/paid-1') }, jobUrl: `/v1/jobs/${created.jobId}` });
    const ready = await eventually(async () => {
      const g = await group(created.group.id);
      return g.state === 'ready' || g.state === 'failed' ? g : null;
    }, 60_000, 'the clone');
    expect(ready.state).toBe('ready');
    expect(ready.revision).toBe(repo.revisions[0]);
    expect(ready.manifest).toEqual(JSON.parse(JSON.stringify(SAMPLE_MANIFEST)));
    for (const server of ['d1', 'd2']) {
      const checkout = join(base, server, 'shared_codes/paid-1');
      expect(readFileSync(join(checkout, 'heavymetal/lib/shop.php'), 'utf8')).toContain('shop_name');
      // Revision 1 has one SQL update; the second arrives with revision 2.
      expect(existsSync(join(checkout, 'heavymetal/sql/updates/0001_base.sql'))).toBe(true);
      expect(existsSync(join(checkout, 'heavymetal/sql/updates/0002_orders.sql'))).toBe(false);
    }
    // Not synced to a server that serves no installs' code.
    expect(existsSync(join(base, 'db/shared_codes/paid-1'))).toBe(false);
    expect((await json(await call('GET', `/v1/code-groups/${created.group.id}`))).revision).toBe(repo.revisions[0]);
    expect((await json(await call('GET', '/v1/code-groups'))).map((g: { name: string }) => g.name)).toContain('paid-1');
  });

  it('refuses bad input with the field named, and creates nothing', async () => {
    const before = await counts();
    const good = { name: 'free-1', tier: 'free', repoUrl: repo.path, revision: 'main', masterServerId: ids.d1, installLimit: 10 };
    const cases: [object, number, RegExp][] = [
      [{ ...good, repoUrl: '--upload-pack=touch /tmp/pwned' }, 400, /repoUrl must be/],
      [{ ...good, repoUrl: 'ext::sh -c touch% /tmp/pwned' }, 400, /repoUrl must be/],
      [{ ...good, revision: '--output=/tmp/x' }, 400, /revision must be/],
      [{ ...good, revision: 'main..evil' }, 400, /revision must be/],
      [{ ...good, name: '../etc' }, 400, /name must be/],
      [{ ...good, tier: 'gold' }, 400, /tier/],
      [{ ...good, hook: 'x' }, 400, /property hook should not exist/],
      [{ ...good, manifest: { ...JSON.parse(JSON.stringify(SAMPLE_MANIFEST)), copy: ['/etc'] } }, 400, /copy must be relative/],
      [{ ...good, masterServerId: ids.db }, 400, /not a dispatcher/],
      [{ ...good, masterServerId: 999999 }, 400, /does not exist/],
      [{ ...good, name: 'paid-1' }, 409, /already exists/],
    ];
    for (const [body, status, message] of cases) {
      const res = await call('POST', '/v1/code-groups', body);
      expect({ body, status: res.status }).toEqual({ body, status });
      expect((await json(res)).message).toMatch(message);
    }
    expect(await counts()).toEqual(before);
  });

  it('fails a group whose revision does not exist, or whose manifest names missing paths, and leaves no checkout', async () => {
    const res = await json(await call('POST', '/v1/code-groups', { name: 'badrev', tier: 'paid', repoUrl: `file://${repo.path}`, revision: 'no-such-branch', masterServerId: ids.d1, installLimit: 5 }));
    const manifest = { ...JSON.parse(JSON.stringify(SAMPLE_MANIFEST)), copy: ['heavymetal/theme', 'heavymetal/not-there'] };
    const res2 = await json(await call('POST', '/v1/code-groups', { name: 'badmanifest', tier: 'paid', repoUrl: repo.path, revision: repo.revisions[1], masterServerId: ids.d1, installLimit: 5, manifest }));
    for (const [created, reason] of [
      [res, /revision no-such-branch cannot be checked out/],
      [res2, /names paths missing at [0-9a-f]{40}: heavymetal\/not-there/],
    ] as const) {
      const dead = await eventually(async () => {
        const j = await job(created.jobId);
        return j.state === 'dead' ? j : null;
      }, 60_000, `job ${created.jobId} to die`);
      expect(dead.lastError).toMatch(reason);
      expect((await group(created.group.id)).state).toBe('failed');
      expect(existsSync(created.group.path)).toBe(false);
    }
  });
});
