import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import mysql from 'mysql2/promise';
import { DataSource, In } from 'typeorm';
import { ApiTokensService } from '@app/auth';
import { CodeUpdateItem, DatabaseUpdate, Install, Server } from '@app/catalog';
import { TenantDatabases } from '@app/databases';
import { buildSampleRepository, SAMPLE_MANIFEST } from '@app/codebases';
import { SiteProbe, type ProbeTarget } from '@app/webserver';
import { startEngine, type RunningEngine } from '../../apps/engine/src/start-engine.js';
import { createTestCatalog, TEST_SECRETS_KEY, testEngineConfig, type TestCatalog } from '../support/catalog.js';
import { startDispatcherWeb, stopDispatcherWeb, type DispatcherWeb } from '../support/dispatcher-web.js';
import { cleanEnv, runCli, spawnWorker, type WorkerProcess } from '../support/processes-engine.js';
import { eventually } from '../support/queue-context.js';
import { startSmtp, type TestSmtp } from '../support/smtp.js';
import { startSshd, stopSshd } from '../support/sshd.js';
import { writeDbOptionsFile } from '../support/tenant-db-server.js';
import { readTestbed, type SshdServer } from '../support/testbed.js';
import { fetchSite } from '../support/web-installs.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = async (res: Response): Promise<any> => res.json();

const INSTALLS = 12;
/** A cron release B adds and release E drops. */
const NIGHTLY = { schedule: '0 3 * * *', command: ['php', 'heavymetal/nightly.php'] };
const D1 = '127.0.112';
const D2 = '127.0.113';

/** Releases of a shop whose page says which release its own file and the library it includes (through the home) come from: a mixed release shows two letters. */
const page = (letter: string) =>
  [
    '<?php',
    "$home = dirname($_SERVER['DOCUMENT_ROOT']);",
    "$config = require $home . '/heavymetal/config.php';",
    "require $home . '/heavymetal/lib/db.php';",
    "require $home . '/heavymetal/lib/release.php';",
    "$greeting = shop_db($config)->query(\"SELECT value FROM settings WHERE name = 'greeting'\")->fetchColumn();",
    "header('Content-Type: text/plain; charset=utf-8');",
    `echo 'shop ', $config['hostname'], ': ', $greeting, ' | page ${letter} lib ', RELEASE_LIB, "\\n";`,
    '',
  ].join('\n');

/**
 * Issue 16's proof: a code group of twelve paid installs on two SSH
 * dispatchers (nginx and php-fpm each, MariaDB), rolled between revisions
 * of a real git repository by real worker processes, while a request loop
 * asks every shop through both dispatchers.
 */
describe('code group rollouts (two SSH dispatchers, nginx, php-fpm, MariaDB, worker processes)', () => {
  let catalog: TestCatalog;
  let engine: RunningEngine;
  let smtp: TestSmtp;
  let second: SshdServer;
  let base: string;
  let repoPath: string;
  let admin: string;
  let orders: string;
  let env: NodeJS.ProcessEnv;
  let worker: WorkerProcess | null = null;
  const rev: Record<string, string> = {};
  const ids: Record<string, number> = {};
  const web: Record<string, DispatcherWeb> = {};
  let installs: Install[] = [];
  let targets: ProbeTarget[] = [];

  const call = (token: string, method: string, path: string, body?: unknown) =>
    fetch(`${engine.url}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const roots = (name: string) => {
    const dir = (r: string) => {
      const p = join(base, name, 'srv', r);
      mkdirSync(p, { recursive: true });
      return p;
    };
    return { homeRoot: dir('home'), sharedCodeRoot: dir('shared_codes'), nginxConfDir: dir('nginx'), cronDir: dir('cron.d'), certsRoot: dir('certs') };
  };
  const ssh = (sshd: SshdServer) => ({ transport: 'ssh', sshHost: sshd.host, sshPort: sshd.port, sshUser: sshd.user, sshKeyRef: sshd.privateKeyPath, sshHostKey: sshd.hostKeyFingerprint });
  const ds = () => engine.app.get(DataSource);
  const cronFile = (server: string, install: Install) => readFileSync(join(base, server, 'srv/cron.d', `shop-${install.fsName}`), 'utf8');
  const git = (...args: string[]) => execFileSync('git', ['-C', repoPath, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: repoPath } }).trim();
  const commit = (files: Record<string, string | null>, message: string) => {
    for (const [path, content] of Object.entries(files)) {
      if (content === null) rmSync(join(repoPath, path));
      else {
        mkdirSync(dirname(join(repoPath, path)), { recursive: true });
        writeFileSync(join(repoPath, path), content);
      }
    }
    git('add', '-A');
    git('commit', '--quiet', '-m', message);
    return git('rev-parse', 'HEAD');
  };
  const report = async (groupId: number, updateId: number) => json(await call(admin, 'GET', `/v1/code-groups/${groupId}/updates/${updateId}`));
  const ended = (groupId: number, updateId: number, timeoutMs = 180_000) =>
    eventually(async () => {
      const r = await report(groupId, updateId);
      return ['done', 'failed', 'stopped'].includes(r.state) ? r : null;
    }, timeoutMs, `update ${updateId} to end`);
  const cliEnv = () => cleanEnv({ CATALOG_URL: catalog.url, SECRETS_KEY: TEST_SECRETS_KEY, LOG_LEVEL: 'warn' });
  const codeLink = (server: string, install: Install) => readlinkSync(join(base, server, 'srv/home', install.fsName, '.code'));
  const releaseOf = (commitId: string) => `../../shared_codes/shop/releases/${commitId}`;

  /**
   * Asks every shop through every dispatcher until stopped: what answered other than 200 with one release's page. A page
   * whose own file and library come from two releases is `mixed` when the install's `.code` links (on both servers: either
   * one's php-fpm may run it) were the same before and after the request; `straddling` when a switch happened while it
   * ran (its script was read before the rename, its library, through the home, after it: the one case a rename allows).
   */
  const requestLoop = () => {
    let running = true;
    const seen = { requests: 0, errors: [] as string[], mixed: [] as string[], straddling: [] as string[], letters: new Set<string>() };
    const byHost = new Map(installs.map((i) => [`roll${i.orderRef.replace('ROLL-', '')}.example.org`, i]));
    const links = (hostname: string) => ['d1', 'd2'].map((server) => codeLink(server, byHost.get(hostname)!)).join(' ');
    const loop = (async () => {
      while (running) {
        await Promise.all(
          targets.map(async (t) => {
            seen.requests += 1;
            try {
              const before = links(t.hostname);
              const answer = await fetchSite(t.ip, t.hostname, '/', { port: t.port, timeoutMs: 10_000 });
              const after = links(t.hostname);
              const m = / \| page (\w) lib (\w)$/.exec(answer.body.trim());
              if (answer.status !== 200 || !m) seen.errors.push(`${t.hostname} via ${t.dispatcher}: ${answer.status} ${answer.body.slice(0, 200)}`);
              else if (m[1] !== m[2]) (before === after ? seen.mixed : seen.straddling).push(`${t.hostname} via ${t.dispatcher}: ${answer.body.trim()}`);
              else seen.letters.add(m[1]!);
            } catch (e) {
              seen.errors.push(`${t.hostname} via ${t.dispatcher}: ${(e as Error).message}`);
            }
          }),
        );
        await sleep(50);
      }
    })();
    return {
      seen,
      stop: async () => {
        running = false;
        await loop;
        return seen;
      },
    };
  };
  /** Every shop answers the page of one release through both dispatchers. */
  const allServe = (letter: string) =>
    eventually(async () => {
      const bodies = await Promise.all(targets.map((t) => fetchSite(t.ip, t.hostname, '/', { port: t.port })));
      return bodies.every((b) => b.status === 200 && b.body.trim().endsWith(`page ${letter} lib ${letter}`)) ? true : null;
    }, 10_000, `every shop to serve release ${letter}`);

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'rollout-e2e-'));
    chmodSync(base, 0o755);
    let repo;
    [catalog, second, repo, smtp] = await Promise.all([createTestCatalog('mariadb', 'rollout_e2e'), startSshd(join(base, 'sshd-2'), `${D2}.250`), buildSampleRepository(join(base, 'repo')), startSmtp()]);
    repoPath = repo.path;
    // Release A: the sample's second revision, its page and library saying A.
    rev.A = commit({ 'html/index.php': page('A'), 'heavymetal/lib/release.php': "<?php\nconst RELEASE_LIB = 'A';\n" }, 'release A');
    // Release B: a new SQL update, a new writable directory and a nightly cron in the manifest, B everywhere.
    const manifestB = { ...JSON.parse(JSON.stringify(SAMPLE_MANIFEST)), writable: [...SAMPLE_MANIFEST.writable!, 'heavymetal/logs'], crons: [...SAMPLE_MANIFEST.crons!, NIGHTLY] };
    rev.B = commit(
      {
        'html/index.php': page('B'),
        'heavymetal/lib/release.php': "<?php\nconst RELEASE_LIB = 'B';\n",
        'heavymetal/sql/updates/0003_release_b.sql': "INSERT INTO settings (name, value) VALUES ('release', 'B');\n",
        'hosting.manifest.json': `${JSON.stringify(manifestB, null, 2)}\n`,
      },
      'release B',
    );
    // Release D (after B on main): one more SQL update, which cannot run twice (the key exists after one run).
    rev.D = commit({ 'html/index.php': page('D'), 'heavymetal/lib/release.php': "<?php\nconst RELEASE_LIB = 'D';\n", 'heavymetal/sql/updates/0004_release_d.sql': "INSERT INTO settings (name, value) VALUES ('release_d', 'D');\n" }, 'release D');
    // Release C (a branch from B): its SQL update fails at its second statement.
    git('checkout', '--quiet', '-b', 'broken-c', rev.B);
    rev.C = commit(
      { 'html/index.php': page('C'), 'heavymetal/lib/release.php': "<?php\nconst RELEASE_LIB = 'C';\n", 'heavymetal/sql/updates/0004_broken.sql': "INSERT INTO settings (name, value) VALUES ('c', 'yes');\nINSERT INTO no_such_table (id) VALUES (1);\n" },
      'release C: a failing SQL update',
    );
    git('checkout', '--quiet', 'main');

    engine = await startEngine(testEngineConfig(catalog.url, { ENGINE_ROLES: 'api', SMTP_URL: smtp.url }));
    env = cleanEnv({ CATALOG_URL: catalog.url, SECRETS_KEY: TEST_SECRETS_KEY, WORKER_POLL_MS: '100', VAR_DIR: join(base, 'var'), LOG_LEVEL: 'info', SMTP_URL: smtp.url, ALLOW_LOCAL_TRANSPORT: 'true' });
    worker = await spawnWorker(env);
    const tokens = engine.app.get(ApiTokensService);
    admin = (await tokens.issue('ops', ['admin'], { actor: 'test', via: 'cli' })).token;
    orders = (await tokens.issue('storefront', ['orders'], { actor: 'test', via: 'cli' })).token;
    const add = async (name: string, body: object) => {
      const res = await call(admin, 'POST', '/v1/servers', body);
      expect(res.status).toBe(201);
      ids[name] = (await json(res)).id;
    };
    const [web1, web2] = await Promise.all([startDispatcherWeb(join(base, 'web-d1'), roots('d1').nginxConfDir, `${D1}.200`), startDispatcherWeb(join(base, 'web-d2'), roots('d2').nginxConfDir, `${D2}.200`)]);
    web.d1 = web1;
    web.d2 = web2;
    await add('d1', { hostname: 'roll1.example.net', roles: ['dispatcher', 'handler'], privateIp: `${D1}.200`, ...ssh(readTestbed().sshd), ...roots('d1'), nginxPidFile: web1.pidFile });
    await add('d2', { hostname: 'roll2.example.net', roles: ['dispatcher', 'handler'], privateIp: `${D2}.200`, ...ssh(second), ...roots('d2'), nginxPidFile: web2.pidFile });
    await add('db', { hostname: 'rolldb.example.net', roles: ['database'], privateIp: '127.0.0.1', transport: 'local', ...roots('db'), dbOptionsFile: writeDbOptionsFile(base) });
    for (const [name, prefix] of [['d1', D1], ['d2', D2]] as const) {
      expect((await call(admin, 'POST', `/v1/servers/${ids[name]}/ips`, { ips: Array.from({ length: INSTALLS }, (_, i) => `${prefix}.${i + 1}`), kind: 'dedicated' })).status).toBe(201);
    }
    // The group made by the engine (its repository on d1, release A there and on d2).
    const created = await json(await call(admin, 'POST', '/v1/code-groups', { name: 'shop', tier: 'paid', repoUrl: repoPath, revision: rev.A, masterServerId: ids.d1, installLimit: 50 }));
    ids.group = created.group.id;
    await eventually(async () => (await json(await call(admin, 'GET', `/v1/code-groups/${ids.group}`))).state === 'ready', 60_000, 'the group ready');
    const accepted: number[] = [];
    for (let i = 0; i < INSTALLS; i++) {
      const res = await call(orders, 'POST', '/v1/installs', { orderRef: `ROLL-${i}`, customerEmail: `owner${i}@example.com`, license: 'paid', sites: [{ hostname: `roll${i}.example.org` }] });
      expect(res.status).toBe(202);
      accepted.push((await json(res)).installId as number);
    }
    installs = await eventually(async () => {
      const rows = await ds().getRepository(Install).find({ where: { id: In(accepted) }, order: { id: 'ASC' } });
      if (rows.some((r) => r.status === 'failed')) throw new Error(`a build failed: ${rows.filter((r) => r.status === 'failed').map((r) => r.statusReason).join('; ')}`);
      return rows.every((r) => r.status === 'live') ? rows : null;
    }, 240_000, 'every install live');
    targets = (await Promise.all(installs.map((i) => engine.app.get(SiteProbe).targets(i.id)))).flat();
    expect(targets).toHaveLength(INSTALLS * 2);
    await allServe('A');
  }, 400_000);

  afterAll(async () => {
    if (worker) {
      worker.child.kill('SIGTERM');
      await worker.exited;
    }
    await engine?.close();
    await catalog?.drop();
    await smtp?.stop();
    await Promise.allSettled([web.d1 && stopDispatcherWeb(web.d1), web.d2 && stopDispatcherWeb(web.d2)]);
    if (second) await stopSshd(second);
    if (!process.env.KEEP_TEST_DIRS) rmSync(base, { recursive: true, force: true });
  });

  it('plans a rollout (dry run): the SQL file each install would run and the tree changes, touching nothing', async () => {
    const res = await call(admin, 'POST', `/v1/code-groups/${ids.group}/updates`, { revision: rev.B, dryRun: true });
    expect(res.status).toBe(200);
    const plan = await json(res);
    expect(plan).toMatchObject({ dryRun: true, kind: 'rollout', fromRevision: rev.A, toRevision: rev.B, canaryInstallId: installs.at(-1)!.id, treeChanges: { writable: ['heavymetal/logs'], copies: [], templates: [] } });
    expect(plan.installs.map((i: { sqlFiles: string[] }) => i.sqlFiles)).toEqual(installs.map(() => ['0003_release_b.sql']));
    expect(existsSync(join(base, 'd1/srv/shared_codes/shop/releases', rev.B!))).toBe(false);
    // The same plan from the command line.
    const dry = await runCli(['codegroup:update', String(ids.group), '--revision', rev.B!, '--dry-run'], base, cliEnv());
    expect({ code: dry.code, stderr: dry.stderr }).toEqual({ code: 0, stderr: '' });
    expect(dry.stdout).toContain(`dry run: rollout of code group ${ids.group} from ${rev.A} to ${rev.B}, ${INSTALLS} install(s)`);
    expect(dry.stdout).toContain('tree changes: writable heavymetal/logs');
    expect(dry.stdout.split('\n').filter((l) => l.includes('0003_release_b.sql'))).toHaveLength(INSTALLS);
    // Bad input changes nothing.
    for (const [body, status] of [[{ revision: '--upload-pack=x' }, 400], [{ revision: rev.B, concurrency: 0 }, 400], [{ revision: rev.B, canaryInstallId: 999999 }, 400], [{ revision: 'no-such-branch', dryRun: true }, 409]] as const) {
      expect({ body, status: (await call(admin, 'POST', `/v1/code-groups/${ids.group}/updates`, body)).status }).toEqual({ body, status });
    }
  });

  it('rolls twelve installs from A to B, canary first: each switched, its SQL update recorded once, caches emptied; every shop answers throughout, two releases in one page only for a request across its switch', async () => {
    // Something in each install's cache, which the rollout empties.
    for (const install of installs) for (const server of ['d1', 'd2']) writeFileSync(join(base, server, 'srv/home', install.fsName, 'heavymetal/cache/compiled.php'), '<?php // old');
    const loop = requestLoop();
    await sleep(300);
    const res = await call(admin, 'POST', `/v1/code-groups/${ids.group}/updates`, { revision: rev.B });
    expect(res.status).toBe(202);
    const queued = await json(res);
    expect(queued).toMatchObject({ kind: 'rollout', canaryInstallId: installs.at(-1)!.id, installIds: installs.map((i) => i.id) });
    // One at a time per group.
    expect((await json(await call(admin, 'POST', `/v1/code-groups/${ids.group}/updates`, { revision: rev.D }))).code).toBe('ROLLOUT_RUNNING');
    const done = await ended(ids.group!, queued.updateId);
    const rows = done.items.map((i: Record<string, unknown>) => `${i.installId}:${i.state}:${i.error}`);
    expect({ state: done.state, error: done.error, counts: done.counts, rows }).toEqual({ state: 'done', error: null, counts: expect.objectContaining({ total: INSTALLS, done: INSTALLS, failed: 0 }), rows: [installs.at(-1)!, ...installs.slice(0, -1)].map((i) => `${i.id}:done:null`) });
    await allServe('B');
    const seen = await loop.stop();

    expect(done.toRevision).toBe(rev.B);
    for (const item of done.items) expect(item).toMatchObject({ state: 'done', switched: true, sqlApplied: 1, cachesCleared: true, probe: 'ok', error: null });
    // The canary ended before any other started.
    const canary = done.items.find((i: { canary: boolean }) => i.canary);
    expect(canary.installId).toBe(installs.at(-1)!.id);
    for (const item of done.items.filter((i: { canary: boolean }) => !i.canary)) expect(new Date(item.startedAt).getTime()).toBeGreaterThanOrEqual(new Date(canary.finishedAt).getTime());
    for (const install of installs) {
      for (const server of ['d1', 'd2']) {
        expect(codeLink(server, install)).toBe(releaseOf(rev.B!));
        expect(existsSync(join(base, server, 'srv/home', install.fsName, 'heavymetal/cache/compiled.php'))).toBe(false);
        expect(existsSync(join(base, server, 'srv/home', install.fsName, 'heavymetal/logs'))).toBe(true);
        // B's new cron is in the install's cron file on each server at once (not only at the CronFiles task's next pass).
        expect(cronFile(server, install)).toContain(`cd ${join(base, server, 'srv/home', install.fsName)} && php heavymetal/nightly.php`);
      }
      const files = (await ds().getRepository(DatabaseUpdate).find({ where: { installId: install.id } })).map((u) => u.file);
      expect(files.filter((f) => f === '0003_release_b.sql')).toHaveLength(1);
    }
    expect((await ds().getRepository(Install).find({ where: { id: In(installs.map((i) => i.id)) } })).map((i) => i.codeRevision)).toEqual(installs.map(() => rev.B));
    const group = await json(await call(admin, 'GET', `/v1/code-groups/${ids.group}`));
    expect(group.revision).toBe(rev.B);
    // The release was fetched once on the master and synced once to d2: both releases are on both servers.
    for (const server of ['d1', 'd2']) for (const r of [rev.A!, rev.B!]) expect(existsSync(join(base, server, 'srv/shared_codes/shop/releases', r, 'html/index.php'))).toBe(true);
    const lines = ((await json(await call(admin, 'GET', `/v1/jobs/${done.jobId}/output`))) as { line: string }[]).map((l) => l.line);
    expect(lines.filter((l) => l.startsWith('fetching '))).toHaveLength(1);
    expect(lines.filter((l) => l.startsWith('synced release '))).toHaveLength(1);

    expect(seen.errors).toEqual([]);
    expect(seen.mixed).toEqual([]);
    // A request in flight across a switch may read both releases (seen once in a full run under load); never more of them than switches.
    if (seen.straddling.length > 0) console.log(`rollout e2e: ${seen.straddling.length} request(s) across a switch read two releases: ${seen.straddling.join('; ')}`);
    expect(seen.straddling.length).toBeLessThanOrEqual(INSTALLS * 2);
    expect(seen.requests).toBeGreaterThan(targets.length * 3);
    expect([...seen.letters].sort()).toEqual(['A', 'B']);
  }, 300_000);

  it('stops at a canary whose SQL update fails: the canary back on B and answering, the others untouched, the file and statement in the report', async () => {
    const [canary, ...others] = installs;
    const res = await call(admin, 'POST', `/v1/code-groups/${ids.group}/updates`, { revision: 'broken-c', canaryInstallId: canary!.id });
    expect(res.status).toBe(202);
    const stopped = await ended(ids.group!, (await json(res)).updateId);
    expect(stopped.state).toBe('stopped');
    expect(stopped.toRevision).toBe(rev.C);
    const item = stopped.items.find((i: { installId: number }) => i.installId === canary!.id);
    expect(item).toMatchObject({ state: 'failed', switched: false, errorFile: '0004_broken.sql', errorLine: 2, errorStatement: 'INSERT INTO no_such_table (id) VALUES (1)' });
    expect(item.error).toMatch(/no_such_table.*switched back to/s);
    expect(stopped.items.filter((i: { state: string }) => i.state === 'skipped')).toHaveLength(others.length);
    for (const server of ['d1', 'd2']) for (const install of installs) expect(codeLink(server, install)).toBe(releaseOf(rev.B!));
    expect(await ds().getRepository(DatabaseUpdate).count({ where: { file: '0004_broken.sql' } })).toBe(0);
    expect((await json(await call(admin, 'GET', `/v1/code-groups/${ids.group}`))).revision).toBe(rev.B);
    await allServe('B');
  }, 200_000);

  it('resumes a rollout after kill -9 of its worker, again and again: every install updated exactly once', async () => {
    const res = await call(admin, 'POST', `/v1/code-groups/${ids.group}/updates`, { revision: rev.D, concurrency: 3 });
    expect(res.status).toBe(202);
    const { updateId } = await json(res);
    const killed: string[] = [];
    for (const delayMs of [1_500, 1_200, 2_000, 1_800]) {
      await sleep(delayMs);
      const items = await ds().getRepository(CodeUpdateItem).find({ where: { updateId } });
      if (items.every((i) => ['done', 'failed', 'skipped'].includes(i.state))) break;
      killed.push(`after ${delayMs} ms: ${items.filter((i) => i.state === 'done').length} done, ${items.filter((i) => i.state === 'running').length} running`);
      worker!.child.kill('SIGKILL');
      await worker!.exited;
      // A dead worker's lease runs out (fast-forwarded, as time would).
      await ds().query(`UPDATE jobs SET fence = fence + 1, lease_expires_at = '2000-01-01 00:00:00.000' WHERE state = 'running'`);
      worker = await spawnWorker(env);
    }
    expect(killed.length).toBeGreaterThan(0);
    const done = await ended(ids.group!, updateId, 240_000);
    expect({ state: done.state, counts: done.counts, errors: done.items.filter((i: { error: string | null }) => i.error).map((i: { error: string }) => i.error) }).toEqual({ state: 'done', counts: expect.objectContaining({ done: INSTALLS }), errors: [] });
    for (const install of installs) {
      // Its key exists once: a second run of the file would have failed the item.
      expect((await ds().getRepository(DatabaseUpdate).find({ where: { installId: install.id, file: '0004_release_d.sql' } }))).toHaveLength(1);
      for (const server of ['d1', 'd2']) expect(codeLink(server, install)).toBe(releaseOf(rev.D!));
    }
    await allServe('D');
    // Pruned after this success: A (no install on it); kept: D (the group's), C and B (the two newest others, a rollback's way back).
    for (const server of ['d1', 'd2']) {
      const releases = readdirSync(join(base, server, 'srv/shared_codes/shop/releases')).sort();
      expect(releases).toEqual([rev.B!, rev.C!, rev.D!].sort());
    }
  }, 400_000);

  it('rolls back to the release before (instant: it is still there), then prunes nothing an install uses', async () => {
    // From the command line: queued, followed with its progress bar, the per-install report printed, exit 0.
    const run = await runCli(['codegroup:rollback', String(ids.group)], base, cliEnv());
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
    expect(run.stdout).toMatch(/rollback \d+ of code group \d+ queued/);
    expect(run.stdout).toMatch(new RegExp(`installs .* ${INSTALLS}/${INSTALLS} \\| failed 0`));
    const updateId = Number(/rollback (\d+) of code group/.exec(run.stdout)![1]);
    expect(run.stdout).toContain(`rollback ${updateId}: done (${INSTALLS} done, 0 skipped, 0 failed of ${INSTALLS})`);
    const done = await report(ids.group!, updateId);
    expect({ kind: done.kind, state: done.state, to: done.toRevision, done: done.counts.done }).toEqual({ kind: 'rollback', state: 'done', to: rev.B, done: INSTALLS });
    for (const install of installs) for (const server of ['d1', 'd2']) expect(codeLink(server, install)).toBe(releaseOf(rev.B!));
    expect((await json(await call(admin, 'GET', `/v1/code-groups/${ids.group}`))).revision).toBe(rev.B);
    await allServe('B');
    // The list of the group's updates, newest first.
    const list = await json(await call(admin, 'GET', `/v1/code-groups/${ids.group}/updates`));
    expect(list.map((u: { kind: string; state: string }) => `${u.kind}:${u.state}`)).toEqual(['rollback:done', 'rollout:done', 'rollout:stopped', 'rollout:done']);
    expect(readFileSync(join(base, 'd1/srv/shared_codes/shop/releases', rev.B!, 'heavymetal/lib/release.php'), 'utf8')).toContain("'B'");
  }, 200_000);
  it('fails one install whose SQL update fails (switched back, the others done), then retries it after a fix', async () => {
    // Release E drops B's nightly cron.
    const manifestE = { ...JSON.parse(JSON.stringify(SAMPLE_MANIFEST)), writable: [...SAMPLE_MANIFEST.writable!, 'heavymetal/logs'] };
    rev.E = commit(
      {
        'html/index.php': page('E'),
        'heavymetal/lib/release.php': "<?php\nconst RELEASE_LIB = 'E';\n",
        'heavymetal/sql/updates/0005_release_e.sql': "INSERT INTO settings (name, value) VALUES ('release_e', 'E');\n",
        'hosting.manifest.json': `${JSON.stringify(manifestE, null, 2)}\n`,
      },
      'release E',
    );
    const victim = installs[2]!;
    const { mariadb } = readTestbed();
    const connection = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: mariadb.adminUser, password: mariadb.adminPassword, database: victim.dbName });
    try {
      // What a customer's own data could hold: the row the update inserts.
      await connection.query("INSERT INTO settings (name, value) VALUES ('release_e', 'mine')");
      const res = await call(admin, 'POST', `/v1/code-groups/${ids.group}/updates`, { revision: 'main', canaryInstallId: installs[0]!.id });
      expect(res.status).toBe(202);
      const { updateId } = await json(res);
      const failed = await ended(ids.group!, updateId);
      expect({ state: failed.state, counts: failed.counts }).toEqual({ state: 'failed', counts: expect.objectContaining({ done: INSTALLS - 1, failed: 1 }) });
      expect(failed.items.find((i: { installId: number }) => i.installId === victim.id)).toMatchObject({ state: 'failed', switched: false, errorFile: '0005_release_e.sql', errorLine: 1 });
      for (const server of ['d1', 'd2']) expect(codeLink(server, victim)).toBe(releaseOf(rev.B!));
      expect(codeLink('d1', installs[3]!)).toBe(releaseOf(rev.E!));
      // Switched back with its crons: the victim keeps B's nightly cron, the others lost it with E.
      for (const server of ['d1', 'd2']) {
        expect(cronFile(server, victim)).toContain('heavymetal/nightly.php');
        expect(cronFile(server, installs[3]!)).not.toContain('heavymetal/nightly.php');
        expect(cronFile(server, installs[3]!)).toContain('heavymetal/cron.php');
      }
      // The fix, then the failed one again (the others are not touched a second time).
      await connection.query("DELETE FROM settings WHERE name = 'release_e'");
      const retried = await call(admin, 'POST', `/v1/code-groups/${ids.group}/updates/${updateId}/retry-failed`, {});
      expect(retried.status).toBe(202);
      expect((await json(retried)).installIds).toEqual([victim.id]);
      const done = await ended(ids.group!, updateId);
      expect({ state: done.state, counts: done.counts }).toEqual({ state: 'done', counts: expect.objectContaining({ done: INSTALLS }) });
      for (const server of ['d1', 'd2']) expect(codeLink(server, victim)).toBe(releaseOf(rev.E!));
      for (const server of ['d1', 'd2']) expect(cronFile(server, victim)).not.toContain('heavymetal/nightly.php');
      expect((await connection.query("SELECT value FROM settings WHERE name = 'release_e'"))[0]).toEqual([{ value: 'E' }]);
      // Each file's marker, committed with the file's end in the tenant database: what a resumed install reads to never run a file twice.
      const markers = await engine.app.get(TenantDatabases).updateMarkers(await ds().getRepository(Server).findOneByOrFail({ id: ids.db }), victim.dbName);
      const recorded = await ds().getRepository(DatabaseUpdate).findOneByOrFail({ installId: victim.id, file: '0005_release_e.sql' });
      expect(markers.get('0005_release_e.sql')).toBe(recorded.checksum);
      expect(markers.get('0004_release_d.sql')).toMatch(/^[0-9a-f]{64}$/);
      await allServe('E');
    } finally {
      await connection.end();
    }
  }, 300_000);
});
