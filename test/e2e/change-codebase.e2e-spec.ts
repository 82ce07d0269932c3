import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { DataSource } from 'typeorm';
import { ApiTokensService } from '@app/auth';
import { AuditEvent, Install, Job, SagaStep, Server, ServerIp, SharedCodeGroup } from '@app/catalog';
import { buildSampleRepository, SAMPLE_MANIFEST, type SampleRepository } from '@app/codebases';
import { INSTALL_CODEBASE_CHANGE } from '@app/codebase-update';
import { phpUserOf } from '@app/webserver';
import { startEngine, type RunningEngine } from '../../apps/engine/src/start-engine.js';
import { createTestCatalog, ownInstallIds, TEST_SECRETS_KEY, testEngineConfig, type TestCatalog } from '../support/catalog.js';
import { startHandlerFpm, stopHandlerFpm, type HandlerFpm } from '../support/handler-fpm.js';
import { startMountNamespace, stopMountNamespace, type MountNamespace } from '../support/mount-namespace.js';
import { startNginx, stopNginx } from '../support/nginx.js';
import { cleanEnv, runCli } from '../support/processes-engine.js';
import { eventually } from '../support/queue-context.js';
import { checkoutGroup, testServer } from '../support/server-roots.js';
import { startSshd, stopSshd } from '../support/sshd.js';
import { writeDbOptionsFile } from '../support/tenant-db-server.js';
import type { NginxServer, SshdServer } from '../support/testbed.js';
import { fetchSite } from '../support/web-installs.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = async (res: Response): Promise<any> => res.json();

/**
 * Issue 16's "Change an install's codebase", end to end: two SSH dispatchers
 * (each its own files behind one layout: a mount namespace each) with nginx
 * and engine-managed php-fpm (a pool per install, its open_basedir naming
 * the install's code group), MariaDB, a paid install built live by the
 * engine on code group A, then moved to group B of the same revision over
 * the API: `.code` re-pointed on both servers, slot counts moved, pools
 * rebuilt, the shop answering through both dispatchers. Refused between
 * revisions and for bad input with nothing changed; a change whose probe
 * fails is undone.
 */
describe('change an install\'s codebase (2 SSH dispatchers, nginx, managed php-fpm, MariaDB)', () => {
  let catalog: TestCatalog;
  let engine: RunningEngine;
  let ds: DataSource;
  let token: string;
  let base: string;
  let repo: SampleRepository;
  const sshd: Record<string, SshdServer> = {};
  const machines: Record<string, MountNamespace> = {};
  const nginx: Record<string, NginxServer> = {};
  const fpm: Record<string, HandlerFpm> = {};
  const servers: Record<string, Server> = {};
  const groups: Record<string, SharedCodeGroup> = {};
  let install: Install;
  const HOSTS = { d1: '127.0.111.3', d2: '127.0.111.4' } as const;
  const SITE_IPS = { d1: '127.0.111.131', d2: '127.0.111.132' } as const;
  const HOSTNAME = 'www.change.test';

  const call = (method: string, path: string, body?: unknown) =>
    fetch(`${engine.url}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  /** The job ended (done or dead); on timeout, the error names its state, last error and saga journal. */
  const jobEnded = async (jobId: number) => {
    try {
      return await eventually(async () => {
        const job = await ds.getRepository(Job).findOneByOrFail({ id: jobId });
        return job.state === 'done' || job.state === 'dead' ? job : null;
      }, 180_000, `job ${jobId}`);
    } catch (error) {
      const job = await ds.getRepository(Job).findOneBy({ id: jobId });
      throw new Error(`job ${jobId} (${job?.kind}, ${job?.state}): ${error instanceof Error ? error.message : String(error)}; last error: ${job?.lastError}; journal: ${await journal(jobId)}`);
    }
  };
  const journal = async (jobId: number) =>
    (await ds.getRepository(SagaStep).find({ where: { jobId }, order: { stepIndex: 'ASC' } })).map((s) => `${s.stepName}:${s.state}${s.error ? ` (${s.error})` : ''}`).join(', ');
  /** Where the install's `.code` points on a dispatcher (its own files: the namespace's source directory). */
  const codeLink = (name: 'd1' | 'd2') => readlinkSync(join(base, name, 'srv/home', install.fsName, '.code'));
  const releaseLink = (group: string, revision: string) => posix.join('../../shared_codes', group, 'releases', revision);
  const pool = (name: 'd1' | 'd2') => readFileSync(join(servers[name]!.phpFpmPoolDir!, 'current', `${install.fsName}.conf`), 'utf8');
  const counts = async () => Object.fromEntries((await ds.getRepository(SharedCodeGroup).find({ order: { id: 'ASC' } })).map((g) => [g.name, g.installCount]));
  const shopAnswers = async () => {
    for (const ip of Object.values(SITE_IPS)) expect(await fetchSite(ip, HOSTNAME, '/')).toMatchObject({ status: 200, body: expect.stringContaining('Welcome; enjoy the shop') });
  };
  /** A code group made by hand (as the clone job lays it out) on the given dispatchers. */
  const group = async (name: string, revision: string, on: readonly ('d1' | 'd2')[], extra: Partial<SharedCodeGroup> = {}) => {
    for (const server of on) checkoutGroup(repo.path, join(base, server, 'srv/shared_codes'), name, revision);
    groups[name] = await ds.getRepository(SharedCodeGroup).save({
      name, tier: 'paid', repoUrl: repo.path, revision, path: join(servers.d1!.sharedCodeRoot, name), masterServerId: servers.d1!.id,
      installLimit: 10, installCount: 0, pinned: false, manifest: JSON.parse(JSON.stringify(SAMPLE_MANIFEST)), state: 'ready', locked: false, ...extra,
    } as SharedCodeGroup);
    return groups[name]!;
  };

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'change-codebase-'));
    chmodSync(base, 0o755);
    catalog = await createTestCatalog('mariadb', 'change_codebase');
    // Two machines with one layout: each its own files behind the same home and shared code roots.
    for (const dir of ['home', 'shared_codes']) mkdirSync(join(base, 'common/srv', dir), { recursive: true });
    for (const name of Object.keys(HOSTS)) {
      const binds = ['home', 'shared_codes'].map((dir) => ({ source: join(base, name, 'srv', dir), target: join(base, 'common/srv', dir) }));
      for (const bind of binds) mkdirSync(bind.source, { recursive: true });
      machines[name] = await startMountNamespace(join(base, `ns-${name}.log`), binds);
    }
    for (const [name, host] of Object.entries(HOSTS)) sshd[name] = await startSshd(join(base, `sshd-${name}`), host, { mountNamespace: machines[name]!.pid });
    repo = await buildSampleRepository(join(base, 'repo'));
    engine = await startEngine(testEngineConfig(catalog.url, { ENGINE_ROLES: 'api,worker' }));
    ds = engine.app.get(DataSource);
    // Install ids (and so the user shop<id> the dispatchers make on this machine) in this file's own range.
    await ownInstallIds(ds, 111001);
    token = (await engine.app.get(ApiTokensService).issue('ops', ['admin', 'orders', 'support'], { actor: 'test', via: 'cli' })).token;
    for (const name of ['d1', 'd2'] as const) {
      const row = testServer(join(base, name), `${name}.change.test`, ['dispatcher', 'handler'], sshd[name]!, {
        privateIp: '127.0.0.1',
        homeRoot: join(base, 'common/srv/home'),
        sharedCodeRoot: join(base, 'common/srv/shared_codes'),
      });
      const poolDir = join(base, name, 'srv/php-pools');
      nginx[name] = await startNginx(join(base, `nginx-${name}`), { include: [join(row.nginxConfDir, 'current/*.conf')], mountNamespace: machines[name]!.pid });
      fpm[name] = await startHandlerFpm(join(base, `fpm-${name}`), poolDir, { mountNamespace: machines[name]!.pid });
      servers[name] = await ds.getRepository(Server).save({ ...row, phpFpmPoolDir: poolDir, phpFpmPidFile: fpm[name]!.pidFile, nginxPidFile: join(nginx[name]!.prefix, 'nginx.pid') });
      await ds.getRepository(ServerIp).save({ serverId: servers[name]!.id, ip: SITE_IPS[name], kind: 'dedicated', failoverGroup: null, activeServerId: null });
    }
    servers.db = await ds.getRepository(Server).save(testServer(join(base, 'db'), 'db.change.test', ['database'], null, { dbOptionsFile: writeDbOptionsFile(base), privateIp: '127.0.0.1' }));
    // The install lands on A (the only group when it is ordered).
    await group('paid-a', repo.revisions[1]!, ['d1', 'd2']);
    const order = await json(await call('POST', '/v1/installs', { orderRef: 'CHG-1', customerEmail: 'owner@example.com', license: 'paid', sites: [{ hostname: HOSTNAME }] }));
    expect(order).toMatchObject({ installId: expect.any(Number), jobId: expect.any(Number) });
    expect((await jobEnded(order.jobId)).state).toBe('done');
    install = await ds.getRepository(Install).findOneByOrFail({ id: order.installId });
    expect(install.status).toBe('live');
    // B: same revision; C: the other revision; D: same revision, released on d1 only; E: same revision, its front page missing; free-f: the other tier.
    await group('paid-b', repo.revisions[1]!, ['d1', 'd2']);
    await group('paid-c', repo.revisions[0]!, ['d1', 'd2']);
    await group('paid-d', repo.revisions[1]!, ['d1']);
    await group('paid-e', repo.revisions[1]!, ['d1', 'd2']);
    for (const name of ['d1', 'd2']) rmSync(join(base, name, 'srv/shared_codes/paid-e/releases', repo.revisions[1]!, 'html/index.php'));
    await group('free-f', repo.revisions[1]!, ['d1', 'd2'], { tier: 'free' });
    await group('paid-locked', repo.revisions[1]!, ['d1', 'd2'], { locked: true });
    await group('paid-full', repo.revisions[1]!, ['d1', 'd2'], { installLimit: 1, installCount: 1 });
  }, 300_000);

  afterAll(async () => {
    await engine?.close();
    await catalog?.drop();
    await Promise.allSettled([...Object.values(nginx).map(stopNginx), ...Object.values(fpm).map(stopHandlerFpm), ...Object.values(sshd).map(stopSshd)]);
    await Promise.allSettled(Object.values(machines).map(stopMountNamespace));
    // The install's account the build made on the dispatchers (this machine).
    if (install) execFileSync('sh', ['-c', `userdel --force ${phpUserOf(install)} 2>/dev/null; true`]);
    if (!process.env.KEEP_TEST_DIRS) rmSync(base, { recursive: true, force: true });
  });

  it('is live on group A, reached through .code on both dispatchers', async () => {
    expect({ d1: codeLink('d1'), d2: codeLink('d2') }).toEqual({ d1: releaseLink('paid-a', repo.revisions[1]!), d2: releaseLink('paid-a', repo.revisions[1]!) });
    expect(pool('d1')).toContain(`/shared_codes/paid-a/releases:`);
    await shopAnswers();
  });

  it('refuses bad input (400), unknown targets (404) and every target it cannot move to (409), changing nothing', async () => {
    const before = { counts: await counts(), links: [codeLink('d1'), codeLink('d2')], jobs: await ds.getRepository(Job).countBy({ kind: INSTALL_CODEBASE_CHANGE.name }) };
    const refused = async (installId: number, body: unknown) => {
      const res = await call('POST', `/v1/installs/${installId}/codebase`, body);
      return { status: res.status, body: await json(res) };
    };
    for (const body of [{}, { groupId: 'b' }, { groupId: 0 }, { groupId: 1.5 }, { groupId: groups['paid-b']!.id, dryRun: 'yes' }]) {
      const answer = await refused(install.id, body);
      expect({ body, status: answer.status, code: answer.body.code }).toEqual({ body, status: 400, code: 'VALIDATION_FAILED' });
    }
    expect(await refused(install.id, { groupId: 999_999 })).toMatchObject({ status: 404, body: { code: 'NOT_FOUND' } });
    expect(await refused(999_999, { groupId: groups['paid-b']!.id })).toMatchObject({ status: 404, body: { code: 'NOT_FOUND' } });

    // Another revision: refused, naming both.
    const other = await refused(install.id, { groupId: groups['paid-c']!.id });
    expect(other).toMatchObject({
      status: 409,
      body: { code: 'CODEBASE_REVISION_DIFFERS', details: { installRevision: repo.revisions[1], groupRevision: repo.revisions[0], groupId: groups['paid-c']!.id } },
    });
    expect(other.body.message).toContain(repo.revisions[1]!.slice(0, 12));
    expect(other.body.message).toContain(repo.revisions[0]!.slice(0, 12));

    const codes: [string, string][] = [
      ['paid-a', 'CODEBASE_SAME_GROUP'],
      ['paid-d', 'CODEBASE_RELEASE_MISSING'],
      ['free-f', 'CODE_GROUP_TIER_DIFFERS'],
      ['paid-locked', 'CODE_GROUP_LOCKED'],
      ['paid-full', 'CODE_GROUP_FULL'],
    ];
    for (const [name, code] of codes) {
      const answer = await refused(install.id, { groupId: groups[name]!.id });
      expect({ name, status: answer.status, code: answer.body.code }).toEqual({ name, status: 409, code });
    }
    expect((await refused(install.id, { groupId: groups['paid-d']!.id })).body.details.servers).toEqual(['d2.change.test']);

    // A dry run checks everything and queues nothing.
    expect(await refused(install.id, { groupId: groups['paid-b']!.id, dryRun: true })).toMatchObject({
      status: 200,
      body: { dryRun: true, jobId: null, fromGroupId: groups['paid-a']!.id, toGroupId: groups['paid-b']!.id, revision: repo.revisions[1], servers: ['d1.change.test', 'd2.change.test'] },
    });

    expect({ counts: await counts(), links: [codeLink('d1'), codeLink('d2')], jobs: await ds.getRepository(Job).countBy({ kind: INSTALL_CODEBASE_CHANGE.name }) }).toEqual(before);
    expect((await ds.getRepository(Install).findOneByOrFail({ id: install.id })).sharedCodeGroupId).toBe(groups['paid-a']!.id);
  });

  it('moves the install to group B of the same revision: links, slot, pools; the shop answers again after a gap under 3 s per dispatcher (about 0.2-0.5 s measured)', async () => {
    const before = await counts();
    // A request loop through both dispatchers for the whole change.
    const answers: { at: number; via: 'd1' | 'd2'; status: number }[] = [];
    let looping = true;
    const loop = (async () => {
      for (let i = 0; looping; i++) {
        const via = i % 2 ? 'd2' : 'd1';
        answers.push({ via, status: await fetchSite(SITE_IPS[via], HOSTNAME, '/').then((a) => a.status, () => 0), at: Date.now() });
      }
    })();
    const started = Date.now();
    // Asked twice at once: one change queued, the other refused.
    const both = await Promise.all([0, 1].map(async () => {
      const r = await call('POST', `/v1/installs/${install.id}/codebase`, { groupId: groups['paid-b']!.id });
      return { status: r.status, body: await json(r) };
    }));
    both.sort((a, b) => a.status - b.status);
    expect(both[1]).toMatchObject({ status: 409, body: { code: 'CODEBASE_CHANGE_RUNNING' } });
    const res = { status: both[0]!.status };
    const answer = both[0]!.body;
    expect({ status: res.status, body: answer }).toMatchObject({ status: 202, body: { installId: install.id, fromGroupId: groups['paid-a']!.id, toGroupId: groups['paid-b']!.id, jobId: expect.any(Number), dryRun: false } });
    const job = await jobEnded(answer.jobId);
    const wall = Date.now() - started;
    looping = false;
    await loop;
    expect({ state: job.state, journal: await journal(job.id) }).toEqual({ state: 'done', journal: 'release:done, config:done, slot:done, switch:done, webserver:done, probe:done' });

    expect({ d1: codeLink('d1'), d2: codeLink('d2') }).toEqual({ d1: releaseLink('paid-b', repo.revisions[1]!), d2: releaseLink('paid-b', repo.revisions[1]!) });
    const moved = await ds.getRepository(Install).findOneByOrFail({ id: install.id });
    expect({ group: moved.sharedCodeGroupId, revision: moved.codeRevision }).toEqual({ group: groups['paid-b']!.id, revision: repo.revisions[1] });
    expect(await counts()).toEqual({ ...before, 'paid-a': before['paid-a']! - 1, 'paid-b': before['paid-b']! + 1 });
    // PHP may read the new group's release (and no longer the old one's).
    for (const name of ['d1', 'd2'] as const) {
      expect(pool(name)).toContain('/shared_codes/paid-b/releases:');
      expect(pool(name)).not.toContain('/shared_codes/paid-a');
    }
    await shopAnswers();
    const audit = await ds.getRepository(AuditEvent).find({ where: { targetType: 'install', targetId: String(install.id) }, order: { id: 'ASC' } });
    expect(audit.map((a) => a.action)).toEqual(expect.arrayContaining(['install.codebase.change', 'install.codebase.changed']));
    // The gap a change leaves, per dispatcher: from its php-fpm reloading the pool for B (open_basedir naming B's directory)
    // to its `.code` renamed onto B's release, PHP refuses the script (404 "No input file specified"). One short gap, no 5xx, no flapping.
    const gaps = Object.fromEntries(
      (['d1', 'd2'] as const).map((via) => {
        const mine = answers.filter((a) => a.via === via);
        const bad = mine.filter((a) => a.status !== 200);
        const first = mine.findIndex((a) => a.status !== 200);
        const last = mine.map((a) => a.status !== 200).lastIndexOf(true);
        return [via, { requests: mine.length, failed: bad.length, statuses: [...new Set(bad.map((a) => a.status))], contiguous: first < 0 || mine.slice(first, last + 1).every((a) => a.status !== 200), gapMs: first < 0 ? 0 : mine[last]!.at - mine[first]!.at }];
      }),
    );
    // eslint-disable-next-line no-console
    console.log(JSON.stringify({ change_wall_ms: wall, gaps }));
    for (const via of ['d1', 'd2'] as const) {
      expect(gaps[via]!.statuses.filter((s: number) => s !== 404)).toEqual([]);
      expect(gaps[via]!.contiguous).toBe(true);
      expect(gaps[via]!.gapMs).toBeLessThan(3_000);
    }
  }, 240_000);

  it('undoes a change whose probe fails: back on B, links, slot and pools as they were, the shop answering', async () => {
    const before = await counts();
    const res = await call('POST', `/v1/installs/${install.id}/codebase`, { groupId: groups['paid-e']!.id });
    expect(res.status).toBe(202);
    const job = await jobEnded((await json(res)).jobId);
    expect(job.state).toBe('dead');
    const steps = await ds.getRepository(SagaStep).find({ where: { jobId: job.id }, order: { stepIndex: 'ASC' } });
    expect(steps.map((s) => `${s.stepName}:${s.state}`)).toEqual(['release', 'config', 'slot', 'switch', 'webserver', 'probe'].map((n) => `${n}:compensated`));
    expect(job.lastError).toMatch(/probe.*the shop does not answer/);

    expect({ d1: codeLink('d1'), d2: codeLink('d2') }).toEqual({ d1: releaseLink('paid-b', repo.revisions[1]!), d2: releaseLink('paid-b', repo.revisions[1]!) });
    expect((await ds.getRepository(Install).findOneByOrFail({ id: install.id })).sharedCodeGroupId).toBe(groups['paid-b']!.id);
    expect(await counts()).toEqual(before);
    for (const name of ['d1', 'd2'] as const) expect(pool(name)).toContain('/shared_codes/paid-b/releases:');
    await shopAnswers();
    const audit = await ds.getRepository(AuditEvent).find({ where: { targetType: 'install', targetId: String(install.id), action: 'install.codebase.change-failed' } });
    expect(audit).toHaveLength(1);
  }, 240_000);

  it('install:codebase (the built CLI): a dry run, a refusal (exit 1, nothing changed), and a change followed to its end', async () => {
    const env = cleanEnv({ CATALOG_URL: catalog.url, SECRETS_KEY: TEST_SECRETS_KEY, LOG_LEVEL: 'warn', ALLOW_LOCAL_TRANSPORT: 'true' });
    const before = await counts();
    const dry = await runCli(['install:codebase', String(install.id), '--group', String(groups['paid-a']!.id), '--dry-run'], base, env);
    expect({ code: dry.code, stdout: dry.stdout }).toEqual({ code: 0, stdout: expect.stringContaining('dry run: install') });
    const refused = await runCli(['install:codebase', String(install.id), '--group', String(groups['paid-c']!.id)], base, env);
    expect({ code: refused.code, stderr: refused.stderr }).toEqual({ code: 1, stderr: expect.stringContaining('CODEBASE_REVISION_DIFFERS') });
    expect((await runCli(['install:codebase', 'x', '--group', '1'], base, env)).code).toBe(1);
    expect((await runCli(['install:codebase', String(install.id)], base, env)).code).toBe(1);
    expect(await counts()).toEqual(before);

    // Back to A, followed until the engine's worker is done.
    const moved = await runCli(['install:codebase', String(install.id), '--group', String(groups['paid-a']!.id), '--timeout', '120'], base, env);
    expect({ code: moved.code, stderr: moved.stderr }).toEqual({ code: 0, stderr: '' });
    expect(moved.stdout).toMatch(new RegExp(`job \\d+ done after \\d+ attempt\\(s\\)\\nthe install is on group ${groups['paid-a']!.id}`));
    expect({ d1: codeLink('d1'), d2: codeLink('d2') }).toEqual({ d1: releaseLink('paid-a', repo.revisions[1]!), d2: releaseLink('paid-a', repo.revisions[1]!) });
    expect(await counts()).toEqual({ ...before, 'paid-a': before['paid-a']! + 1, 'paid-b': before['paid-b']! - 1 });
    await shopAnswers();
  }, 240_000);
});
