import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { ApiTokensService } from '@app/auth';
import { AuditEvent, Install, Job, SharedCodeGroup } from '@app/catalog';
import { buildSampleRepository, RetiredGroupsTask, SAMPLE_MANIFEST, type SampleRepository } from '@app/codebases';
import { startEngine, type RunningEngine } from '../../apps/engine/src/start-engine.js';
import { createTestCatalog, testEngineConfig, TEST_SECRETS_KEY, type TestCatalog } from '../support/catalog.js';
import { cleanEnv, runCli } from '../support/processes-engine.js';
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
  const cliEnv = () => cleanEnv({ CATALOG_URL: catalog.url, SECRETS_KEY: TEST_SECRETS_KEY, LOG_LEVEL: 'warn' });
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
  const finished = (id: number) =>
    eventually(async () => {
      const j = await job(id);
      return ['done', 'dead', 'cancelled'].includes(j.state) ? j : null;
    }, 60_000, `job ${id} to finish`);
  const settled = (id: number) =>
    eventually(async () => {
      const g = await group(id);
      return g.state === 'ready' || g.state === 'failed' ? g : null;
    }, 60_000, `code group ${id} to be cloned`);
  const createGroup = async (name: string, revision: string, extra: object = {}) => {
    const res = await call('POST', '/v1/code-groups', { name, tier: 'paid', repoUrl: repo.path, revision, masterServerId: ids.d1, installLimit: 5, ...extra });
    expect(res.status).toBe(202);
    return (await json(res)) as { group: { id: number; path: string }; jobId: number };
  };
  const checkouts = (name: string) => ['d1', 'd2'].map((server) => existsSync(join(base, server, 'shared_codes', name)));

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
      // The release of the revision (code-layout.ts), the same on both; only the master keeps the repository.
      const checkout = join(base, server, 'shared_codes/paid-1/releases', repo.revisions[0]!);
      expect(existsSync(join(base, server, 'shared_codes/paid-1/repo.git/HEAD'))).toBe(server === 'd1');
      expect(existsSync(join(checkout, '.git'))).toBe(false);
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

  it('checks out a branch, a tag or a (short) commit, and records the commit', async () => {
    // The sample repository's branch `broken` exists only as origin/broken in a clone.
    execFileSync('git', ['-C', repo.path, 'tag', 'release-1', repo.revisions[0]!], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: repo.path } });
    const cases: [string, string, string][] = [
      ['by-branch', 'broken', repo.broken],
      ['by-tag', 'release-1', repo.revisions[0]!],
      ['by-commit', repo.revisions[1]!.slice(0, 12), repo.revisions[1]!],
      ['by-default-branch', 'main', repo.revisions[1]!],
    ];
    const created = await Promise.all(cases.map(([name, revision]) => createGroup(name, revision)));
    for (const [i, [name, , commit]] of cases.entries()) {
      const ready = await settled(created[i]!.group.id);
      expect({ name, state: ready.state, revision: ready.revision }).toEqual({ name, state: 'ready', revision: commit });
      expect(readdirSync(join(base, 'd2/shared_codes', name, 'releases'))).toEqual([commit]);
    }
    // The branch's own file is there: the release is the branch's commit, not main's.
    expect(existsSync(join(base, 'd1/shared_codes/by-branch/releases', repo.broken, 'heavymetal/sql/updates/0003_broken.sql'))).toBe(true);
  });

  it('removes a failed group, so its name can be used again', async () => {
    const failedGroup = (await json(await call('GET', '/v1/code-groups'))).find((g: { name: string }) => g.name === 'badrev');
    expect(failedGroup.state).toBe('failed');
    const res = await call('DELETE', `/v1/code-groups/${failedGroup.id}`);
    expect(res.status).toBe(202);
    const removal = await json(res);
    expect(removal).toMatchObject({ group: { id: failedGroup.id, state: 'retired' }, jobUrl: `/v1/jobs/${removal.jobId}` });
    expect((await finished(removal.jobId)).state).toBe('done');
    expect((await call('GET', `/v1/code-groups/${failedGroup.id}`)).status).toBe(404);
    // Gone: asked again, there is nothing to remove.
    expect((await call('DELETE', `/v1/code-groups/${failedGroup.id}`)).status).toBe(404);

    const again = await createGroup('badrev', 'main');
    expect((await settled(again.group.id)).state).toBe('ready');
  });

  it('refuses to remove a group that installs use (409, how many), then removes it from its master and every server it was synced to', async () => {
    const ds = engine.app.get(DataSource);
    const created = await createGroup('to-remove', repo.revisions[0]!);
    expect((await settled(created.group.id)).state).toBe('ready');
    expect(checkouts('to-remove')).toEqual([true, true]);
    const install = await ds.getRepository(Install).save({
      orderRef: 'uses-to-remove', customerEmail: 'c@example.com', license: 'paid', fsName: 'usestoremove', dbName: 'usestoremove', dbUser: 'usestoremove',
      dbPasswordEnc: 'v2.x.y.z.w', sharedCodeGroupId: created.group.id, status: 'live',
    });
    await ds.getRepository(SharedCodeGroup).update({ id: created.group.id }, { installCount: 1 });

    const refused = await call('DELETE', `/v1/code-groups/${created.group.id}`);
    expect(refused.status).toBe(409);
    expect(await json(refused)).toMatchObject({ code: 'CODE_GROUP_IN_USE', message: expect.stringMatching(/used by 1 install\(s\) \(install \d+\)/), details: { installs: 1 } });
    expect(await group(created.group.id)).toMatchObject({ state: 'ready', installLimit: 5 });
    expect(checkouts('to-remove')).toEqual([true, true]);
    const dry = await runCli(['codegroup:remove', '--dry-run', String(created.group.id)], base, cliEnv());
    expect(dry.code).toBe(1);
    expect(dry.stderr).toContain('is used by 1 install(s)');
    expect(dry.stdout).toContain(`would remove ${join(base, 'd2/shared_codes/to-remove')} on dispatch2.example.net`);

    // The install failed and gave its slot back: nothing uses the group any more.
    await ds.getRepository(Install).update({ id: install.id }, { status: 'failed' });
    await ds.getRepository(SharedCodeGroup).update({ id: created.group.id }, { installCount: 0 });
    const res = await call('DELETE', `/v1/code-groups/${created.group.id}`);
    expect(res.status).toBe(202);
    const removal = await json(res);
    const done = await finished(removal.jobId);
    expect(done.state).toBe('done');
    expect(checkouts('to-remove')).toEqual([false, false]);
    expect(await ds.getRepository(SharedCodeGroup).findOneBy({ id: created.group.id })).toBeNull();
    // The failed install keeps its row, without the group.
    expect((await ds.getRepository(Install).findOneByOrFail({ id: install.id })).sharedCodeGroupId).toBeNull();
    const audit = await ds.getRepository(AuditEvent).find({ where: { targetType: 'code_group', targetId: String(created.group.id) }, order: { id: 'ASC' } });
    expect(audit.map((e) => e.action)).toEqual(['codegroup.create', 'codegroup.remove', 'codegroup.removed']);
    expect(audit[2]!.details).toMatchObject({ removedFrom: ['dispatch1.example.net', 'dispatch2.example.net'], detachedInstalls: [install.id] });
  });

  it('retires a group (no new installs land there) and refuses any other state change', async () => {
    const created = await createGroup('to-retire', repo.revisions[1]!);
    expect((await settled(created.group.id)).state).toBe('ready');
    const res = await call('PATCH', `/v1/code-groups/${created.group.id}`, { state: 'retired' });
    expect(res.status).toBe(200);
    expect(await json(res)).toMatchObject({ id: created.group.id, state: 'retired' });
    const bad = await call('PATCH', `/v1/code-groups/${created.group.id}`, { state: 'ready' });
    expect(bad.status).toBe(400);
    expect((await json(bad)).message).toMatch(/state can only be set to 'retired'/);
    expect(await group(created.group.id)).toMatchObject({ state: 'retired' });
    // Its releases stay while installs use it.
    expect(checkouts('to-retire')).toEqual([true, true]);
    // A retired group with no install left is removed, with its repository and releases on every server, by the workers' task.
    expect(await engine.app.get(RetiredGroupsTask).removeUnused()).toContain(created.group.id);
    await eventually(async () => (await call('GET', `/v1/code-groups/${created.group.id}`)).status === 404, 60_000, 'the retired group removed');
    expect(checkouts('to-retire')).toEqual([false, false]);
  });

  it('codegroup:remove removes a group from the command line and follows the removal', async () => {
    const created = await createGroup('cli-remove', repo.revisions[0]!);
    expect((await settled(created.group.id)).state).toBe('ready');
    const run = await runCli(['codegroup:remove', String(created.group.id)], base, cliEnv());
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`code group #${created.group.id} cli-remove retired; removal job`);
    expect(run.stdout).toMatch(/removing .*cli-remove on dispatch2\.example\.net/);
    expect(run.stdout).toContain(`code group #${created.group.id} cli-remove removed`);
    expect(checkouts('cli-remove')).toEqual([false, false]);
    const missing = await runCli(['codegroup:remove', '999999'], base, cliEnv());
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('Code group 999999 does not exist');
  });
});

