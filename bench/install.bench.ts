import 'reflect-metadata';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { DataSource, MoreThan } from 'typeorm';
import { generateToken, hashToken, tokenDisplayPrefix } from '@app/auth';
import { ApiToken, createCatalogDataSource, Job, PinRule, SagaStep, Server, ServerIp, SharedCodeGroup } from '@app/catalog';
import { buildSampleRepository, SAMPLE_MANIFEST } from '@app/codebases';
import { loadConfig } from '@app/config';
import { startDispatcherWeb, stopDispatcherWeb, type DispatcherWeb } from '../test/support/dispatcher-web.js';
import { startMariadb, stopMariadb } from '../test/support/mariadb.js';
import { cleanEnv, runCli, spawnApi, spawnWorker, type ApiProcess, type WorkerProcess } from '../test/support/processes-engine.js';
import { checkoutGroup, testServer } from '../test/support/server-roots.js';
import { startSshd, stopSshd } from '../test/support/sshd.js';
import type { SshdServer } from '../test/support/testbed.js';
import { fetchSite } from '../test/support/web-installs.js';
import { seedBaseInstalls } from './base-installs.js';
import { CLOCK_TICKS, machineBusyTicks } from './codebase-update-support.js';
import { buildLargeSqlRepository } from './large-shop-dump.js';
import { plainReload, quiesce } from './nginx-reload.js';

/**
 * npm run bench -- install
 *
 * Order to live as production runs it: the API and a worker in separate
 * engine processes at the default poll interval and concurrency, two SSH
 * dispatchers each with a running nginx and php-fpm already serving 2,000
 * installs (`BENCH_BASE_INSTALLS`), a private MariaDB as catalog and tenant
 * database server, the sample codebase. Paid orders one at a time
 * (`BENCH_ORDERS`, default 20): from the order hook until the install is
 * live (the probe has had its front page from PHP through both
 * dispatchers; checked again after), then a burst of 100 at once. nginx's
 * own reload of the 2,000 installs is measured in the same run, and the
 * engine's share of each rebuild (the apply's time beside its nginx -t and
 * reload) is read from the rebuilds' own reports. Then orders of a codebase
 * whose install SQL is a shop's dump of about 400 statements (130 tables
 * with demo data, `BENCH_LARGE_ORDERS`, default 5), one at a time: their
 * order to live, median and range, and the CPU the whole machine used
 * during each (`large_sql_order_cpu_s`, median: every process, from
 * /proc/stat as the codebase-update bench counts it; the work an order
 * costs, steadier than its time when the machine is shared).
 * BENCH_WORKER_NODE_OPTIONS: node options for the worker, to profile it
 * (e.g. --perf-basic-prof).
 */
const BASE = Number(process.env.BENCH_BASE_INSTALLS ?? 2000);
const LATENCY_ORDERS = Number(process.env.BENCH_ORDERS ?? 20);
const BURST = Number(process.env.BENCH_BURST ?? 100);
const LARGE_ORDERS = Number(process.env.BENCH_LARGE_ORDERS ?? 5);
/** Base installs share these IPs per dispatcher, as free installs do (nginx binds one socket per address). */
const SHARED_IPS = 10;
const SECRETS_KEY = '0f'.repeat(32);
const dir = mkdtempSync(join(tmpdir(), 'bench-install-'));
chmodSync(dir, 0o755);
const log = (line: string) => process.stderr.write(line + '\n');
const percentile = (xs: number[], p: number) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
};
const median = (xs: number[]) => percentile(xs, 50);
const round = (x: number, digits = 3) => Number(x.toFixed(digits));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const mariadb = await startMariadb(join(dir, 'mariadb'));
const sshds: SshdServer[] = [];
const webs: DispatcherWeb[] = [];
let ds: DataSource | null = null;
let watcher: mysql.Connection | null = null;
let api: ApiProcess | null = null;
let worker: WorkerProcess | null = null;
try {
  sshds.push(await startSshd(join(dir, 'sshd-1'), '127.0.0.11'), await startSshd(join(dir, 'sshd-2'), '127.0.0.12'));
  const admin = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: mariadb.adminUser, password: mariadb.adminPassword });
  await admin.query('CREATE DATABASE bench');
  await admin.end();
  const url = `mysql://${encodeURIComponent(mariadb.adminUser)}:${encodeURIComponent(mariadb.adminPassword)}@${mariadb.host}:${mariadb.port}/bench`;
  const config = loadConfig({ CATALOG_URL: url, SECRETS_KEY, VAR_DIR: join(dir, 'var') });
  ds = await createCatalogDataSource(config.catalog);
  await ds.initialize();
  await ds.runMigrations({ transaction: 'each' });

  const repo = await buildSampleRepository(join(dir, 'repo'));
  const large = await buildLargeSqlRepository(join(dir, 'repo-large'));
  const dispatchers: Server[] = [];
  for (const [i, sshd] of sshds.entries()) {
    const privateIp = `127.${87 + i}.200.1`;
    const row = testServer(join(dir, `d${i + 1}`), `bench${i + 1}.example.net`, ['dispatcher', 'handler'], sshd, { privateIp });
    const web = await startDispatcherWeb(join(dir, `web-${i + 1}`), row.nginxConfDir, privateIp);
    webs.push(web);
    const server = await ds.getRepository(Server).save({ ...row, nginxPidFile: web.pidFile });
    dispatchers.push(server);
    checkoutGroup(repo.path, server.sharedCodeRoot, 'bench', repo.revisions[1]!);
    checkoutGroup(large.path, server.sharedCodeRoot, 'bench-large', large.revision);
    const dedicated = Array.from({ length: 1 + LATENCY_ORDERS + BURST + LARGE_ORDERS }, (_, n) => ({ serverId: server.id, ip: `127.${87 + i}.${Math.floor(n / 250)}.${(n % 250) + 1}`, kind: 'dedicated' as const, failoverGroup: null, activeServerId: null }));
    const shared = Array.from({ length: SHARED_IPS }, (_, n) => ({ serverId: server.id, ip: `127.${87 + i}.100.${n + 1}`, kind: 'shared' as const, failoverGroup: null, activeServerId: null }));
    await ds.getRepository(ServerIp).save([...dedicated, ...shared], { chunk: 100 });
  }
  const cnf = join(dir, 'engine-admin.cnf');
  writeFileSync(cnf, `[client]\nhost=${mariadb.host}\nport=${mariadb.port}\nuser=${mariadb.adminUser}\npassword=${mariadb.adminPassword}\n`, { mode: 0o600 });
  await ds.getRepository(Server).save(testServer(join(dir, 'db'), 'benchdb.example.net', ['database'], null, { dbOptionsFile: cnf, privateIp: '127.0.0.1' }));
  const group = await ds.getRepository(SharedCodeGroup).save({
    name: 'bench', tier: 'paid', repoUrl: repo.path, revision: repo.revisions[1]!, path: join(dir, 'd1/srv/shared_codes/bench'), masterServerId: dispatchers[0]!.id,
    installLimit: BASE + 1 + LATENCY_ORDERS + BURST, installCount: BASE, pinned: false, manifest: JSON.parse(JSON.stringify(SAMPLE_MANIFEST)), state: 'ready',
  });
  // The large-dump codebase: its own group, reached by the orders that name it (a pin rule on an order attribute).
  const largeGroup = await ds.getRepository(SharedCodeGroup).save({
    name: 'bench-large', tier: 'paid', repoUrl: large.path, revision: large.revision, path: join(dir, 'd1/srv/shared_codes/bench-large'), masterServerId: dispatchers[0]!.id,
    installLimit: LARGE_ORDERS, installCount: 0, pinned: true, manifest: JSON.parse(JSON.stringify(SAMPLE_MANIFEST)), state: 'ready',
  });
  await ds.getRepository(PinRule).save({ matchEmail: null, matchAttribute: 'codebase', matchValue: 'large', codeGroupId: largeGroup.id, serverId: null, priority: 100, note: 'bench: the large dump' });
  log(`large install dump: ${large.statements} statements, ${(large.bytes / 1024).toFixed(0)} KiB`);
  await seedBaseInstalls(ds, dispatchers, group, BASE);
  log(`${BASE} live installs on both dispatchers`);

  const token = generateToken();
  await ds.getRepository(ApiToken).insert({ name: 'bench', tokenHash: hashToken(token), prefix: tokenDisplayPrefix(token), scopes: ['orders'], lastUsedAt: null, revokedAt: null } as never);
  // Production's settings: default poll interval and concurrency (nothing set), api and worker apart.
  const env = cleanEnv({ CATALOG_URL: url, SECRETS_KEY, LOG_LEVEL: 'warn', VAR_DIR: join(dir, 'var'), ORDERS_PER_MINUTE: '0' });
  // The worker announces its start at info level.
  [api, worker] = await Promise.all([spawnApi({ ...env, PORT: '0' }), spawnWorker({ ...env, LOG_LEVEL: 'info', ...(process.env.BENCH_WORKER_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_WORKER_NODE_OPTIONS } : {}) }, 120_000)]);

  // Both dispatchers' nginx carry the 2,000 installs before anything is measured.
  let t = performance.now();
  const rebuilt = await runCli(['rebuild-nginx', '--timeout', '900'], process.cwd(), env);
  if (rebuilt.code !== 0) throw new Error(`rebuild-nginx failed: ${rebuilt.stderr}${rebuilt.stdout}`);
  log(`first rebuild of ${BASE} installs on both dispatchers: ${((performance.now() - t) / 1000).toFixed(2)} s`);

  // nginx's own reload of these 2,000 installs, measured in this run (three times, after the previous reload's workers are gone).
  const reloads: number[] = [];
  for (let i = 0; i < 3; i++) {
    await quiesce(webs[0]!.nginx);
    reloads.push(await plainReload(webs[0]!.nginx));
  }
  log(`nginx -s reload with ${BASE} installs: ${reloads.map((r) => (r / 1000).toFixed(3)).join(', ')} s`);
  await quiesce(webs[0]!.nginx, 500);

  let n = 0;
  const order = async (attributes?: Record<string, string>): Promise<{ id: number; hostname: string }> => {
    n++;
    const hostname = `bench${n}-shop.example.com`;
    const res = await fetch(`${api!.url}/v1/installs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ orderRef: `BENCH-${n}`, customerEmail: `b${n}@example.com`, license: 'paid', sites: [{ hostname }], ...(attributes ? { attributes } : {}) }),
    });
    if (res.status !== 202) throw new Error(`order ${n}: HTTP ${res.status} ${await res.text()}`);
    return { id: ((await res.json()) as { installId: number }).installId, hostname };
  };
  /**
   * Waits until every install is live, looking every 10 ms: one prepared
   * statement on a connection of its own. The look is the harness's, not
   * the engine's work: it costs the shared cores (and the MariaDB the
   * dumps load into) as little as it can (a TypeORM find per look cost
   * this process about 6 % of a core throughout an order).
   */
  watcher = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: mariadb.adminUser, password: mariadb.adminPassword, database: 'bench' });
  const settled = async (ids: number[]) => {
    const statement = `SELECT id, status, status_reason AS reason FROM installs WHERE id IN (${ids.map(() => '?').join(', ')})`;
    for (; ids.length > 0; ) {
      const [rows] = await watcher!.execute<(mysql.RowDataPacket & { id: number; status: string; reason: string | null })[]>(statement, ids);
      const failed = rows.find((r) => r.status === 'failed');
      if (failed) throw new Error(`install ${failed.id} failed: ${failed.reason}`);
      if (rows.length === ids.length && rows.every((r) => r.status === 'live')) return;
      await sleep(10);
    }
  };
  /** Live means it answers: its front page, from PHP and its database, through both dispatchers. */
  const answers = async (installId: number, hostname: string) => {
    const ips: { ip: string }[] = await ds!.query(
      'SELECT ip.ip AS ip FROM install_site_ips h JOIN server_ips ip ON ip.id = h.server_ip_id JOIN install_sites s ON s.id = h.install_site_id WHERE s.install_id = ?',
      [installId],
    );
    for (const { ip } of ips) {
      const page = await fetchSite(ip, hostname, '/');
      if (page.status !== 200 || !page.body.startsWith(`shop ${hostname}: `)) throw new Error(`install ${installId} is live but ${hostname} on ${ip} answers ${page.status}: ${page.body.slice(0, 200)}`);
    }
    return ips.length;
  };

  // Warm-up: the first build opens the SSH connections.
  const first = await order();
  await settled([first.id]);
  await answers(first.id, first.hostname);
  const latencies: number[] = [];
  const rebuildsBefore: { id: number | null }[] = await ds.query("SELECT MAX(id) AS id FROM jobs WHERE kind = 'nginx.rebuild'");
  for (let i = 0; i < LATENCY_ORDERS; i++) {
    t = performance.now();
    const placed = await order();
    await settled([placed.id]);
    latencies.push((performance.now() - t) / 1000);
    if ((await answers(placed.id, placed.hostname)) !== 2) throw new Error(`install ${placed.id} is not on both dispatchers`);
  }
  // Where one build's time goes, step by step (the journal's durations).
  const lastJob = await ds.query(`SELECT id FROM jobs WHERE kind = 'install.build' ORDER BY id DESC LIMIT 1`);
  const stepRows: { step_name: string; duration_ms: number; attempt: number }[] = await ds.query('SELECT step_name, duration_ms, attempt FROM saga_steps WHERE job_id = ? ORDER BY step_index', [lastJob[0].id]);
  log(`steps of the last build (ms): ${stepRows.map((r) => `${r.step_name} ${r.duration_ms}${r.attempt > 1 ? ` (x${r.attempt})` : ''}`).join(', ')}`);
  // The rebuilds of the one-at-a-time orders: each apply's own report, its total beside its nginx -t and reload.
  const reports: { line: string }[] = await ds.query(
    "SELECT l.line FROM job_logs l JOIN jobs j ON j.id = l.job_id WHERE j.kind = 'nginx.rebuild' AND j.id > ? AND l.line LIKE '{%'",
    [rebuildsBefore[0]?.id ?? 0],
  );
  const applies = reports
    .map((r) => JSON.parse(r.line) as { nginx: string; timings: { testMs: number; reloadMs: number; totalMs: number } })
    .filter((r) => r.nginx === 'reloaded');
  const applyS = applies.map((a) => a.timings.totalMs / 1000);
  const nginxInApplyS = applies.map((a) => (a.timings.testMs + a.timings.reloadMs) / 1000);
  log(`order to live: p50 ${median(latencies).toFixed(3)} s, p99 ${percentile(latencies, 99).toFixed(3)} s (min ${Math.min(...latencies).toFixed(3)}, max ${Math.max(...latencies).toFixed(3)}) over ${LATENCY_ORDERS} orders`);
  log(`rebuilds during them: ${applies.length}; apply p50 ${median(applyS).toFixed(3)} s, of which nginx -t + reload ${median(nginxInApplyS).toFixed(3)} s`);
  log(`rebuild timings (ms): ${applies.map((a) => JSON.stringify(a.timings)).join(' ')}`);

  // A codebase whose install SQL is a shop's large dump, one order at a time.
  const largeLatencies: number[] = [];
  const largeSqlS: number[] = [];
  let lastLargeAt = 0;
  // The machine's CPU over these orders (every process, from /proc/stat): the work an order costs, which moves less with the machine's other load than its time does.
  const largeCpu: number[] = [];
  for (let i = 0; i < LARGE_ORDERS; i++) {
    const cpu0 = machineBusyTicks();
    lastLargeAt = Date.now();
    t = performance.now();
    const placed = await order({ codebase: 'large' });
    await settled([placed.id]);
    largeLatencies.push((performance.now() - t) / 1000);
    largeCpu.push((machineBusyTicks() - cpu0) / CLOCK_TICKS);
    if ((await answers(placed.id, placed.hostname)) !== 2) throw new Error(`install ${placed.id} is not on both dispatchers`);
    const [row] = await ds.query('SELECT i.shared_code_group_id AS g, s.duration_ms AS ms FROM installs i JOIN jobs j ON j.id = (SELECT MAX(id) FROM jobs WHERE kind = \'install.build\') JOIN saga_steps s ON s.job_id = j.id AND s.step_name = \'sql-updates\' WHERE i.id = ?', [placed.id]);
    if (Number(row?.g) !== largeGroup.id) throw new Error(`install ${placed.id} is not in the large-dump group`);
    largeSqlS.push(Number(row.ms) / 1000);
  }
  if (LARGE_ORDERS > 0) {
    // The last one's timeline from its order (ms): the build job's start, each step's span, the rebuilds' spans, live.
    const at = (d: Date | null) => (d ? d.getTime() - lastLargeAt : NaN);
    const build = (await ds.getRepository(Job).find({ where: { kind: 'install.build' }, order: { id: 'DESC' }, take: 1 }))[0]!;
    const spans = (await ds.getRepository(SagaStep).find({ where: { jobId: build.id }, order: { stepIndex: 'ASC' } })).map((r) => `${r.stepName} ${at(r.startedAt)}-${at(r.finishedAt)}`);
    const rebuildSpans = (await ds.getRepository(Job).find({ where: { kind: 'nginx.rebuild', id: MoreThan(build.id - 10) }, order: { id: 'ASC' } }))
      .filter((j) => j.finishedAt && j.finishedAt.getTime() >= lastLargeAt)
      .map((j) => `${j.resourceKey} ${at(j.startedAt)}-${at(j.finishedAt)}`);
    log(`timeline of the last large order (ms from the order): build started ${at(build.startedAt)}; ${spans.join(', ')}; rebuilds ${rebuildSpans.join(', ')}; live ${Math.round(largeLatencies[largeLatencies.length - 1]! * 1000)}`);
    log(`order to live with a ${large.statements}-statement install dump: median ${median(largeLatencies).toFixed(3)} s (min ${Math.min(...largeLatencies).toFixed(3)}, max ${Math.max(...largeLatencies).toFixed(3)}) over ${LARGE_ORDERS} orders; its sql-updates step median ${median(largeSqlS).toFixed(3)} s; the machine's CPU per order ${largeCpu.map((c) => c.toFixed(2)).join(', ')} s`);
  }

  const beforeBurst: { id: number | null }[] = await ds.query('SELECT MAX(id) AS id FROM jobs');
  const t0 = performance.now();
  const burst = await Promise.all(Array.from({ length: BURST }, () => order()));
  await settled(burst.map((b) => b.id));
  const burstS = (performance.now() - t0) / 1000;
  log(`burst of ${BURST} orders: all live in ${burstS.toFixed(2)} s`);
  for (const b of burst.slice(0, 5)) await answers(b.id, b.hostname);
  // Coalescing: the nginx rebuilds (each one reload) the burst caused on each dispatcher, not one per install.
  const rebuilds: { resource_key: string; n: number }[] = await ds.query(
    `SELECT resource_key, COUNT(*) AS n FROM jobs WHERE kind = 'nginx.rebuild' AND id > ? GROUP BY resource_key`,
    [beforeBurst[0]?.id ?? 0],
  );
  log(`nginx rebuilds during the burst: ${rebuilds.map((r) => `${r.resource_key} ${r.n}`).join(', ')}`);

  process.stdout.write(
    JSON.stringify({
      bench: 'install',
      base_installs: BASE,
      orders: LATENCY_ORDERS,
      order_to_live_p50_s: round(median(latencies)),
      order_to_live_p99_s: round(percentile(latencies, 99)),
      order_to_live_range_s: [round(Math.min(...latencies)), round(Math.max(...latencies))],
      burst_100_wall_s: round(burstS, 2),
      burst_100_reloads_max: Math.max(0, ...rebuilds.map((r) => Number(r.n))),
      nginx_reload_2000_s: round(median(reloads) / 1000),
      nginx_reload_2000_range_s: [round(Math.min(...reloads) / 1000), round(Math.max(...reloads) / 1000)],
      rebuild_apply_p50_s: applies.length ? round(median(applyS)) : null,
      rebuild_nginx_in_apply_p50_s: applies.length ? round(median(nginxInApplyS)) : null,
      large_sql_statements: large.statements,
      large_sql_orders: LARGE_ORDERS,
      order_to_live_large_sql_s: LARGE_ORDERS ? round(median(largeLatencies)) : null,
      order_to_live_large_sql_range_s: LARGE_ORDERS ? [round(Math.min(...largeLatencies)), round(Math.max(...largeLatencies))] : null,
      large_sql_step_p50_s: LARGE_ORDERS ? round(median(largeSqlS)) : null,
      large_sql_order_cpu_s: LARGE_ORDERS ? round(median(largeCpu)) : null,
    }) + '\n',
  );
} finally {
  for (const p of [api, worker]) {
    if (!p) continue;
    p.child.kill('SIGTERM');
    await p.exited;
  }
  await watcher?.end();
  await ds?.destroy();
  for (const web of webs) await stopDispatcherWeb(web);
  for (const sshd of sshds) await stopSshd(sshd);
  await stopMariadb(mariadb);
  if (process.env.BENCH_KEEP) log(`kept ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
}
