import 'reflect-metadata';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import mysql from 'mysql2/promise';
import { DataSource } from 'typeorm';
import { generateToken, hashToken, tokenDisplayPrefix } from '@app/auth';
import { ApiToken, createCatalogDataSource, Install, Server, ServerIp } from '@app/catalog';
import { buildSampleRepository } from '@app/codebases';
import { loadConfig } from '@app/config';
import { startEngine, type RunningEngine } from '../apps/engine/src/start-engine.js';
import { startDispatcherWeb, stopDispatcherWeb, type DispatcherWeb } from '../test/support/dispatcher-web.js';
import { startMariadb, stopMariadb } from '../test/support/mariadb.js';
import { cleanEnv, spawnApi, spawnWorker, type ApiProcess, type WorkerProcess } from '../test/support/processes-engine.js';
import { testServer } from '../test/support/server-roots.js';
import { startSshd, stopSshd } from '../test/support/sshd.js';
import type { SshdServer } from '../test/support/testbed.js';
import { fetchSite } from '../test/support/web-installs.js';
import { profileRollout, summarize } from './codebase-update-profile.js';
import { CLOCK_TICKS, machineBusyTicks, phaseBreakdown, RequestLoop, treeCpuTicks, type Phases } from './codebase-update-support.js';

/**
 * npm run bench -- codebase-update
 *
 * Issue 16's rollout as production runs it: the API and a worker in
 * separate engine processes at the default poll interval and concurrency
 * (nothing set), two SSH dispatchers (private sshd on 127.0.110.1 and .2),
 * each with a running nginx and php-fpm, a private MariaDB as catalog and
 * tenant database server. Setup (not measured): the code group is created
 * through the API at the sample codebase's first revision (the clone job
 * makes its repository and release on the master and syncs the release to
 * the other dispatcher), then `BENCH_INSTALLS` (200) orders are placed
 * through the API and built until live. The installs are free ones, half on
 * each dispatcher (the master alone serves a free install; each order names
 * its dispatcher): a paid install holds a dedicated IP on each dispatcher,
 * and the bench's loopback range (127.0.110.x) cannot hold 400 of them.
 *
 * Measured: `POST /v1/code-groups/:id/updates` to the second revision
 * (one SQL update, 0002_orders.sql) at the default concurrency, polled with
 * `GET .../updates/:updateId` until it ends; meanwhile a request loop asks
 * every install's front page (from PHP and its database) through nginx on
 * its dispatcher, over and over, and counts 5xx answers and failed
 * connections. Then the per-install times (each install's child job), the
 * fetches and syncs of the release per server from the parent job's output,
 * checks of every install, and where the time went: queue waits and each
 * install's steps from the jobs' own records, the CPU of each process tree
 * during the rollout, and a profile of the same rollout code run in this
 * process one install at a time with every step and server command timed
 * (codebase-update-profile.ts).
 */
const INSTALLS = Number(process.env.BENCH_INSTALLS ?? 200);
/** Orders in flight at once while building (setup). */
const ORDER_BATCH = 100;
/**
 * Requests in flight at once in the loop: one, back to back (each install is asked about once a second). The loop
 * shares the machine's two cores with the rollout; at 4 at once it took about half of them and slowed the rollout it
 * watches (docs/benchmarks.md).
 */
const LOOP_CONCURRENCY = Number(process.env.BENCH_LOOP_CONCURRENCY ?? 1);
/** The rollout's concurrency: the engine's default (4) unless set, for a diagnostic run. */
const ROLLOUT_CONCURRENCY = process.env.BENCH_ROLLOUT_CONCURRENCY ? Number(process.env.BENCH_ROLLOUT_CONCURRENCY) : undefined;
const SHARED_IPS = 4;
/** Installs whose update is profiled step by step after the measured rollout (0: none). */
const PROFILE = Number(process.env.BENCH_PROFILE ?? 20);
const SECRETS_KEY = '0f'.repeat(32);
/** Install ids of the bench's own range (no system user is made here: the dispatchers' PHP is the shared pool). */
const FIRST_ID = 1_110_001;
const dir = mkdtempSync(join(tmpdir(), 'bench-codebase-update-'));
chmodSync(dir, 0o755);
const log = (line: string) => process.stderr.write(line + '\n');
const percentile = (xs: number[], p: number) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
};
const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
const round = (x: number, digits = 3) => Number(x.toFixed(digits));
const ENDED = ['done', 'failed', 'stopped'];

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

const mariadb = await startMariadb(join(dir, 'mariadb'));
const sshds: SshdServer[] = [];
const webs: DispatcherWeb[] = [];
let ds: DataSource | null = null;
let api: ApiProcess | null = null;
let worker: WorkerProcess | null = null;
let loop: RequestLoop | null = null;
let inProcess: RunningEngine | null = null;
try {
  sshds.push(await startSshd(join(dir, 'sshd-1'), '127.0.110.1'), await startSshd(join(dir, 'sshd-2'), '127.0.110.2'));
  const admin = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: mariadb.adminUser, password: mariadb.adminPassword });
  await admin.query('CREATE DATABASE bench');
  await admin.end();
  const url = `mysql://${encodeURIComponent(mariadb.adminUser)}:${encodeURIComponent(mariadb.adminPassword)}@${mariadb.host}:${mariadb.port}/bench`;
  const config = loadConfig({ CATALOG_URL: url, SECRETS_KEY, VAR_DIR: join(dir, 'var') });
  ds = await createCatalogDataSource(config.catalog);
  await ds.initialize();
  await ds.runMigrations({ transaction: 'each' });
  await ds.query(`ALTER TABLE installs AUTO_INCREMENT = ${FIRST_ID}`);

  const repo = await buildSampleRepository(join(dir, 'repo'));
  const dispatchers: Server[] = [];
  for (const [i, sshd] of sshds.entries()) {
    const privateIp = `127.0.110.${3 + i}`;
    const row = testServer(join(dir, `d${i + 1}`), `cu${i + 1}.example.net`, ['dispatcher', 'handler'], sshd, { privateIp });
    const web = await startDispatcherWeb(join(dir, `web-${i + 1}`), row.nginxConfDir, privateIp);
    webs.push(web);
    const server = await ds.getRepository(Server).save({ ...row, nginxPidFile: web.pidFile });
    dispatchers.push(server);
    await ds.getRepository(ServerIp).save(
      Array.from({ length: SHARED_IPS }, (_, n) => ({ serverId: server.id, ip: `127.0.110.${10 * (i + 1) + n + 1}`, kind: 'shared' as const, failoverGroup: null, activeServerId: null })),
    );
  }
  const cnf = join(dir, 'engine-admin.cnf');
  writeFileSync(cnf, `[client]\nhost=${mariadb.host}\nport=${mariadb.port}\nuser=${mariadb.adminUser}\npassword=${mariadb.adminPassword}\n`, { mode: 0o600 });
  await ds.getRepository(Server).save(testServer(join(dir, 'db'), 'cudb.example.net', ['database'], null, { dbOptionsFile: cnf, privateIp: '127.0.0.1' }));

  const token = generateToken();
  await ds.getRepository(ApiToken).insert({ name: 'bench', tokenHash: hashToken(token), prefix: tokenDisplayPrefix(token), scopes: ['admin'], lastUsedAt: null, revokedAt: null } as never);
  // Production's settings: default poll interval and concurrency (nothing set), api and worker apart.
  const env = cleanEnv({ CATALOG_URL: url, SECRETS_KEY, LOG_LEVEL: 'warn', VAR_DIR: join(dir, 'var'), ORDERS_PER_MINUTE: '0' });
  // The worker announces its start at info level.
  [api, worker] = await Promise.all([spawnApi({ ...env, PORT: '0' }), spawnWorker({ ...env, LOG_LEVEL: 'info' }, 120_000)]);
  const call = async (method: string, path: string, body?: unknown): Promise<{ status: number; body: Json }> => {
    const res = await fetch(`${api!.url}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };

  // Setup: the group, cloned by its job at the first revision (repository and release on the master, release synced to the other).
  let t = performance.now();
  const created = await call('POST', '/v1/code-groups', { name: 'cubench', tier: 'free', repoUrl: repo.path, revision: repo.revisions[0], masterServerId: dispatchers[0]!.id, installLimit: INSTALLS });
  if (created.status !== 202) throw new Error(`POST /v1/code-groups: HTTP ${created.status} ${JSON.stringify(created.body)}`);
  const groupId: number = created.body.group.id;
  for (;;) {
    const group = (await call('GET', `/v1/code-groups/${groupId}`)).body;
    if (group.state === 'ready') break;
    if (group.state === 'failed') throw new Error(`the code group's clone failed: ${JSON.stringify((await call('GET', `/v1/jobs/${created.body.jobId}`)).body)}`);
    await sleep(100);
  }
  log(`code group ${groupId} cloned at ${repo.revisions[0]!.slice(0, 12)} in ${((performance.now() - t) / 1000).toFixed(2)} s`);

  // Setup: the installs, ordered through the API and built until live.
  t = performance.now();
  const installs: { id: number; hostname: string }[] = [];
  for (let start = 0; start < INSTALLS; start += ORDER_BATCH) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(ORDER_BATCH, INSTALLS - start) }, async (_, k) => {
        const n = start + k + 1;
        const hostname = `cu${n}-shop.example.com`;
        // Half on each dispatcher (orders placed at once would all see the same counts and pick the same one).
        const serverId = dispatchers[n % dispatchers.length]!.id;
        const res = await call('POST', '/v1/installs', { orderRef: `CU-${n}`, customerEmail: `cu${n}@example.com`, license: 'free', sites: [{ hostname }], serverId });
        if (res.status !== 202) throw new Error(`order ${n}: HTTP ${res.status} ${JSON.stringify(res.body)}`);
        return { id: res.body.installId as number, hostname };
      }),
    );
    await settled(ds, batch.map((b) => b.id));
    installs.push(...batch);
    log(`${installs.length} installs live (${((performance.now() - t) / 1000).toFixed(1)} s)`);
  }
  // Where each install answers: its site's IP on its dispatcher.
  const ipRows: { installId: number; ip: string; serverId: number }[] = await ds.query(
    'SELECT s.install_id AS installId, ip.ip AS ip, h.server_id AS serverId FROM install_site_ips h JOIN server_ips ip ON ip.id = h.server_ip_id JOIN install_sites s ON s.id = h.install_site_id WHERE s.install_id IN (?)',
    [installs.map((i) => i.id)],
  );
  const targets = installs.flatMap((i) => ipRows.filter((r) => Number(r.installId) === i.id).map((r) => ({ installId: i.id, hostname: i.hostname, ip: r.ip, serverId: Number(r.serverId) })));
  const perDispatcher = dispatchers.map((d) => `${d.hostname} ${targets.filter((x) => x.serverId === d.id).length}`).join(', ');
  log(`installs per dispatcher: ${perDispatcher}`);
  if (dispatchers.some((d) => !targets.some((x) => x.serverId === d.id))) throw new Error(`the installs are not on both dispatchers: ${perDispatcher}`);
  for (const target of targets) {
    const page = await fetchSite(target.ip, target.hostname, '/');
    if (page.status !== 200 || !page.body.startsWith(`shop ${target.hostname}: `)) throw new Error(`${target.hostname} on ${target.ip} answers ${page.status}: ${page.body.slice(0, 200)}`);
  }
  log(`all ${installs.length} installs answer through nginx before the rollout`);
  // The builds are over: let their last rebuilds and the worker settle.
  await sleep(2_000);
  if (process.env.BENCH_WORKER_CONCURRENCY) {
    // Diagnostic runs only (with BENCH_ROLLOUT_CONCURRENCY: is the rollout bound by the worker's slots or by CPU?): the
    // installs are built at the default, then the worker is replaced by one with more slots.
    worker.child.kill('SIGTERM');
    await worker.exited;
    worker = await spawnWorker({ ...env, LOG_LEVEL: 'info', WORKER_CONCURRENCY: process.env.BENCH_WORKER_CONCURRENCY }, 120_000);
    log(`worker restarted with ${process.env.BENCH_WORKER_CONCURRENCY} slots`);
  }

  // Measured: the rollout, with the request loop running throughout.
  loop = new RequestLoop(targets, LOOP_CONCURRENCY);
  loop.start();
  await sleep(500);
  const before = loop.snapshot();
  if (before.errors > 0) throw new Error(`the request loop saw errors before the rollout started: ${JSON.stringify(before)}`);
  loop.reset();
  const cpu = () => ({
    machine: machineBusyTicks(),
    bench: process.cpuUsage(),
    worker: treeCpuTicks(worker!.child.pid!),
    api: treeCpuTicks(api!.child.pid!),
    sshd: sshds.map((x) => treeCpuTicks(x.pid)),
    mariadb: treeCpuTicks(mariadb.pid),
    nginx: webs.map((w) => treeCpuTicks(w.nginx.pid)),
    fpm: webs.map((w) => treeCpuTicks(w.fpm.process.pid)),
  });
  const cpuBefore = cpu();
  const t0 = performance.now();
  const posted = Date.now();
  const loadBefore = loadavg()[0]!;
  const started = await call('POST', `/v1/code-groups/${groupId}/updates`, { revision: repo.revisions[1], ...(ROLLOUT_CONCURRENCY ? { concurrency: ROLLOUT_CONCURRENCY } : {}) });
  if (started.status !== 202) throw new Error(`POST updates: HTTP ${started.status} ${JSON.stringify(started.body)}`);
  const { updateId, jobId } = started.body as { updateId: number; jobId: number };
  let report: Json;
  let lastShown = 0;
  for (;;) {
    report = (await call('GET', `/v1/code-groups/${groupId}/updates/${updateId}`)).body;
    if (ENDED.includes(report.state)) break;
    if (performance.now() - lastShown > 5_000) {
      lastShown = performance.now();
      log(`  ${((performance.now() - t0) / 1000).toFixed(1)} s: ${report.state}, ${JSON.stringify(report.counts)}`);
    }
    if (performance.now() - t0 > 900_000) throw new Error(`the rollout did not end in 900 s: ${JSON.stringify(report.counts)}`);
    // The report's finishedAt marks the end; the poll (the report of 200 items) only needs to see it.
    await sleep(500);
  }
  const seenEndS = (performance.now() - t0) / 1000;
  const cpuAfter = cpu();
  const loadAfter = loadavg()[0]!;
  const during = loop.snapshot();
  await loop.stop();
  loop = null;
  // From the POST to the report's end (finishedAt, the engine's clock, on this machine).
  const wallS = (Date.parse(report.finishedAt) - posted) / 1000;
  log(`rollout ${updateId}: ${report.state} ${JSON.stringify(report.counts)}, ${wallS.toFixed(2)} s from POST to its finishedAt (seen by the poll at ${seenEndS.toFixed(2)} s)`);
  log(`request loop during the rollout: ${JSON.stringify(during)}`);
  const failedItems = report.items.filter((i: Json) => i.state !== 'done');
  for (const item of failedItems.slice(0, 5)) log(`  install ${item.installId}: ${item.state} ${item.error ?? ''} ${item.errorFile ?? ''} ${item.errorStatement ?? ''}`);

  // Per install: the report's own times (its items' startedAt and finishedAt are whole seconds), and the same span
  // to the millisecond from each install's child job (claimed by the worker to finished).
  const done = report.items.filter((i: Json) => i.startedAt && i.finishedAt);
  const reportMs = done.map((i: Json) => Date.parse(i.finishedAt) - Date.parse(i.startedAt));
  const childRows: { installId: number; ms: number }[] = (
    await ds.query('SELECT payload AS p, TIMESTAMPDIFF(MICROSECOND, started_at, finished_at) / 1000 AS ms FROM jobs WHERE parent_id = ? AND finished_at IS NOT NULL', [jobId])
  ).map((r: { p: string; ms: string }) => ({ installId: JSON.parse(r.p).installId as number, ms: Number(r.ms) }));
  const perMs = childRows.map((r) => r.ms);
  const canaryMs = childRows.find((r) => r.installId === report.canaryInstallId)?.ms ?? null;

  // Fetches of the revision per server: the parent job's own output (every attempt), and none by any child.
  const parent = (await call('GET', `/v1/jobs/${jobId}`)).body;
  const lines: { line: string; at: string }[] = [];
  for (let after = 0; ; ) {
    const page = (await call('GET', `/v1/jobs/${jobId}/output${after ? `?after=${after}` : ''}`)).body as { id: number; line: string; at: string }[];
    if (!Array.isArray(page) || page.length === 0) break;
    lines.push(...page);
    after = page[page.length - 1]!.id;
  }
  const fetches: Record<string, { git: number; sync: number }> = Object.fromEntries(dispatchers.map((d) => [d.hostname, { git: 0, sync: 0 }]));
  for (const { line } of lines) {
    const git = /^(?:fetching|cloning) .* on (\S+)$/.exec(line);
    if (git) (fetches[git[1]!] ??= { git: 0, sync: 0 }).git++;
    const synced = /^synced release \S+ of \S+ to (\S+)$/.exec(line);
    if (synced) (fetches[synced[1]!] ??= { git: 0, sync: 0 }).sync++;
  }
  const childFetches: { n: number }[] = await ds.query(
    "SELECT COUNT(*) AS n FROM job_logs l JOIN jobs j ON j.id = l.job_id WHERE j.parent_id = ? AND (l.line LIKE '%fetching %' OR l.line LIKE '%cloning %' OR l.line LIKE '%synced release%')",
    [jobId],
  );
  const fetchesPerServer = Object.fromEntries(Object.entries(fetches).map(([host, f]) => [host, f.git + f.sync]));
  log(`parent job ${jobId}: ${parent.state}, attempts ${parent.attempts}, ${lines.length} output lines; per server: ${JSON.stringify(fetches)}; fetch/sync lines in child jobs: ${childFetches[0]?.n ?? 0}`);
  for (const { line, at } of lines.filter((l) => !l.line.startsWith('deferred '))) log(`  ${at} ${line}`);
  // The repository is on the master alone; each server has the new release.
  const commit = report.toRevision as string;
  for (const [i, d] of dispatchers.entries()) {
    const groupDir = join(dir, `d${i + 1}`, 'srv/shared_codes/cubench');
    log(`  ${d.hostname}: repo.git ${existsSync(join(groupDir, 'repo.git/HEAD')) ? 'present' : 'absent'}, release ${commit.slice(0, 12)} ${existsSync(join(groupDir, 'releases', commit, 'heavymetal/sql/updates/0002_orders.sql')) ? 'present' : 'MISSING'}`);
  }

  // Every install: on the new release (its .code link), its SQL update recorded once, and answering.
  const homes: { id: number; fsName: string; serverId: number }[] = (await ds.getRepository(Install).find({ where: installs.map((i) => ({ id: i.id })), select: { id: true, fsName: true, masterServerId: true } })).map((i) => ({ id: i.id, fsName: i.fsName, serverId: i.masterServerId! }));
  let onNew = 0;
  for (const h of homes) {
    const server = dispatchers.find((d) => d.id === h.serverId)!;
    const home = join(server.homeRoot, h.fsName);
    if (resolve(home, readlinkSync(join(home, '.code'))) === join(server.sharedCodeRoot, 'cubench/releases', commit)) onNew++;
  }
  const recorded: { n: number; dup: number }[] = await ds.query(
    "SELECT COUNT(DISTINCT install_id) AS n, COUNT(*) - COUNT(DISTINCT install_id) AS dup FROM database_updates WHERE file = '0002_orders.sql' AND install_id IN (?)",
    [installs.map((i) => i.id)],
  );
  let answeringAfter = 0;
  for (const target of targets) {
    const page = await fetchSite(target.ip, target.hostname, '/');
    if (page.status === 200 && page.body.startsWith(`shop ${target.hostname}: `)) answeringAfter++;
  }
  log(`after: ${onNew}/${homes.length} homes on ${commit.slice(0, 12)}, 0002_orders.sql recorded for ${recorded[0]?.n} (duplicates ${recorded[0]?.dup}), ${answeringAfter}/${targets.length} answer`);

  // CPU seconds during the rollout, by process tree, beside the machine's (which includes any other load).
  const tick = CLOCK_TICKS;
  const sum = (xs: { self: number; children: number }[]) => xs.reduce((a, x) => a + x.self + x.children, 0);
  const cpuS = {
    wall_s: round(seenEndS, 1),
    machine: round((cpuAfter.machine - cpuBefore.machine) / tick, 1),
    worker_node: round((cpuAfter.worker.self - cpuBefore.worker.self) / tick, 1),
    worker_local_commands: round((cpuAfter.worker.children - cpuBefore.worker.children) / tick, 1),
    api: round((sum([cpuAfter.api]) - sum([cpuBefore.api])) / tick, 1),
    sshd_remote_commands: round((sum(cpuAfter.sshd) - sum(cpuBefore.sshd)) / tick, 1),
    mariadb: round((sum([cpuAfter.mariadb]) - sum([cpuBefore.mariadb])) / tick, 1),
    nginx: round((sum(cpuAfter.nginx) - sum(cpuBefore.nginx)) / tick, 1),
    php_fpm: round((sum(cpuAfter.fpm) - sum(cpuBefore.fpm)) / tick, 1),
    bench_request_loop: round((cpuAfter.bench.user + cpuAfter.bench.system - cpuBefore.bench.user - cpuBefore.bench.system) / 1e6, 1),
  };
  log(`CPU seconds during the rollout (2 cores: ${round(seenEndS * 2, 0)} available): ${JSON.stringify(cpuS)}`);

  // Where the time went: the child jobs' queue waits and runs, and each install's steps (its job's output).
  const phases: Phases = await phaseBreakdown(ds, jobId, Date.parse(report.startedAt ?? new Date(posted).toISOString()));
  log(`where the time went: ${JSON.stringify(phases)}`);

  // Profile: the engine processes stopped, the same rollout code run in this process for a third revision
  // (one more small SQL update), one install at a time, every step and server command timed.
  let profile: ReturnType<typeof summarize> | null = null;
  if (PROFILE > 0) {
    for (const p of [api, worker]) {
      p!.child.kill('SIGTERM');
      await p!.exited;
    }
    api = null;
    worker = null;
    const gitEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: repo.path };
    writeFileSync(join(repo.path, 'heavymetal/sql/updates/0003_notes.sql'), "CREATE TABLE order_notes (\n  id INTEGER PRIMARY KEY,\n  note VARCHAR(255) NOT NULL\n);\nINSERT INTO settings (name, value) VALUES ('notes', 'enabled');\n");
    execFileSync('git', ['-C', repo.path, 'add', '.'], { env: gitEnv });
    execFileSync('git', ['-C', repo.path, 'commit', '--quiet', '-m', 'bench: a third revision'], { env: gitEnv });
    const third = execFileSync('git', ['-C', repo.path, 'rev-parse', 'HEAD'], { env: gitEnv, encoding: 'utf8' }).trim();
    inProcess = await startEngine(loadConfig({ CATALOG_URL: url, SECRETS_KEY, PORT: '0', LOG_LEVEL: 'warn', ENGINE_ROLES: 'api', VAR_DIR: join(dir, 'var') }));
    profile = summarize(await profileRollout(inProcess.app, groupId, third, PROFILE));
    log(`profile, one install at a time in this process (medians over ${profile.installs}): ${JSON.stringify(profile)}`);
  }

  process.stdout.write(
    JSON.stringify({
      bench: 'codebase-update',
      installs: report.counts.total,
      dispatchers: dispatchers.length,
      installs_per_dispatcher: Object.fromEntries(dispatchers.map((d) => [d.hostname, targets.filter((x) => x.serverId === d.id).length])),
      concurrency: report.concurrency,
      state: report.state,
      counts: report.counts,
      rollout_200_wall_s: round(wallS, 2),
      per_install_p50_ms: Math.round(median(perMs)),
      per_install_p10_ms: Math.round(percentile(perMs, 10)),
      per_install_p90_ms: Math.round(percentile(perMs, 90)),
      per_install_range_ms: [Math.round(Math.min(...perMs)), Math.round(Math.max(...perMs))],
      per_install_report_p50_ms: Math.round(median(reportMs)),
      per_install_report_range_ms: [Math.min(...reportMs), Math.max(...reportMs)],
      canary_ms: canaryMs === null ? null : Math.round(canaryMs),
      fetches_per_server: fetchesPerServer,
      git_runs_per_server: Object.fromEntries(Object.entries(fetches).map(([h, f]) => [h, f.git])),
      release_syncs_per_server: Object.fromEntries(Object.entries(fetches).map(([h, f]) => [h, f.sync])),
      fetches_in_child_jobs: Number(childFetches[0]?.n ?? 0),
      errors_during_rollout: during.errors,
      requests_during_rollout: during.requests,
      requests_min_per_install: during.minPerTarget,
      non_200_during_rollout: during.non200,
      on_new_release: onNew,
      sql_update_recorded: Number(recorded[0]?.n ?? 0),
      sql_update_duplicates: Number(recorded[0]?.dup ?? 0),
      answering_after: answeringAfter,
      phases,
      cpu_s: cpuS,
      loop_concurrency: LOOP_CONCURRENCY,
      worker_concurrency: Number(process.env.BENCH_WORKER_CONCURRENCY ?? 4),
      load_avg_1m: [round(loadBefore, 1), round(loadAfter, 1)],
      profile,
    }) + '\n',
  );
} finally {
  await loop?.stop();
  await inProcess?.close();
  for (const p of [api, worker]) {
    if (!p) continue;
    p.child.kill('SIGTERM');
    await p.exited;
  }
  await ds?.destroy();
  for (const web of webs) await stopDispatcherWeb(web);
  for (const sshd of sshds) await stopSshd(sshd);
  await stopMariadb(mariadb);
  if (process.env.BENCH_KEEP) log(`kept ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
}

async function settled(ds: DataSource, ids: number[]): Promise<void> {
  const t = performance.now();
  for (;;) {
    const rows = await ds.getRepository(Install).find({ where: ids.map((id) => ({ id })), select: { id: true, status: true, statusReason: true } });
    const failed = rows.find((r) => r.status === 'failed');
    if (failed) throw new Error(`install ${failed.id} failed: ${failed.statusReason}`);
    if (rows.length === ids.length && rows.every((r) => r.status === 'live')) return;
    if (performance.now() - t > 1_200_000) throw new Error(`installs not live after 1200 s: ${rows.filter((r) => r.status !== 'live').length} left`);
    await sleep(200);
  }
}
