import 'reflect-metadata';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Module, type DynamicModule } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import mysql from 'mysql2/promise';
import { DataSource } from 'typeorm';
import { SiteAccounting } from '@app/accounting';
import { AccessLogCursor, CatalogModule, Server, ServerIp, SharedCodeGroup, SiteUsage } from '@app/catalog';
import { SAMPLE_MANIFEST } from '@app/codebases';
import { ConfigModule, loadConfig, type EngineConfig } from '@app/config';
import { HostsModule } from '@app/hosts';
import { QueueModule } from '@app/queue';
import { SiteHealth, SiteHealthModule } from '@app/site-health';
import { NginxPipeline, WebserverModule } from '@app/webserver';
import { CodebasesModule } from '@app/codebases';
import { startDispatcherWeb, stopDispatcherWeb, type DispatcherWeb } from '../test/support/dispatcher-web.js';
import { startMariadb, stopMariadb } from '../test/support/mariadb.js';
import { cleanEnv } from '../test/support/processes-engine.js';
import { testServer } from '../test/support/server-roots.js';
import { startSshd, stopSshd } from '../test/support/sshd.js';
import type { SshdServer } from '../test/support/testbed.js';
import { writeHome } from '../test/support/web-installs.js';
import { seedBaseInstalls } from './base-installs.js';

/**
 * `npm run bench -- tasks` (issue 18): the recurring tasks' heavy work at
 * production size.
 * - accounting_mb_per_s: site accounting of a generated 1 GB shops access
 *   log (`shop_host` format, 2,000 hosts, chronological) on a dispatcher
 *   reached over SSH, as production does it (the dispatcher counts its log
 *   with the engine's Perl counter, the counts come back over the pooled
 *   SSH connection, the counters and cursor are written); the cursor is
 *   reset between rounds; `accounting_rss_mb` is the engine process's peak
 *   RSS (the whole application), `accounting_rss_growth_mb` how much a pass
 *   adds to it, `accounting_counter_rss_mb` the counter's peak on the
 *   dispatcher; the `accounting_small_*` figures are the same for a log an
 *   eighth of the size over the same hours (constant memory: they match).
 *   Target: at least 100 MB/s, constant memory.
 * - health_round_2000_s: one site-health round over 2,000 live installs
 *   served through two SSH dispatchers (nginx and php-fpm, every install on
 *   both: 4,000 requests, PHP answering), at the task's concurrency.
 *   Target: at most 30 s.
 * - scheduler_duplicate_runs: two engine processes with the worker and cron
 *   roles on one MariaDB catalog run a 1-second task for BENCH_SCHEDULER_S
 *   (default 20) seconds; ticks run more than once (must be 0).
 * Medians of BENCH_ROUNDS (default 3) rounds, with their range.
 */
const INSTALLS = Number(process.env.BENCH_INSTALLS ?? 2000);
const LOG_MB = Number(process.env.BENCH_LOG_MB ?? 1024);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SCHEDULER_S = Number(process.env.BENCH_SCHEDULER_S ?? 20);
const SHARED_IPS = 10;
const SECRETS_KEY = '0f'.repeat(32);
const dir = mkdtempSync(join(tmpdir(), 'bench-tasks-'));
chmodSync(dir, 0o755);
const log = (line: string) => process.stderr.write(line + '\n');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round = (x: number, digits = 3) => Number(x.toFixed(digits));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

@Module({})
class BenchModule {
  static forRoot(config: EngineConfig): DynamicModule {
    return {
      module: BenchModule,
      imports: [ConfigModule.forRoot(config), CatalogModule.forRoot({ runMigrations: true }), QueueModule.forRoot({ worker: null }), HostsModule.forRoot({ http: false }), CodebasesModule.forRoot({ http: false }), WebserverModule, SiteHealthModule.forRoot({ http: false })],
      providers: [SiteAccounting],
    };
  }
}

const mariadb = await startMariadb(join(dir, 'mariadb'));
const sshds: SshdServer[] = [];
const webs: DispatcherWeb[] = [];
const engines: ChildProcess[] = [];
let app: Awaited<ReturnType<typeof NestFactory.createApplicationContext>> | null = null;
try {
  const load0 = loadavg()[0]!;
  sshds.push(await startSshd(join(dir, 'sshd-1'), '127.0.0.31'), await startSshd(join(dir, 'sshd-2'), '127.0.0.32'));
  const admin = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: mariadb.adminUser, password: mariadb.adminPassword });
  await admin.query('CREATE DATABASE bench');
  await admin.query('CREATE DATABASE bench_sched');
  await admin.end();
  const url = (db: string) => `mysql://${encodeURIComponent(mariadb.adminUser)}:${encodeURIComponent(mariadb.adminPassword)}@${mariadb.host}:${mariadb.port}/${db}`;
  const config = loadConfig({ CATALOG_URL: url('bench'), SECRETS_KEY, VAR_DIR: join(dir, 'var'), LOG_LEVEL: 'warn' });
  app = await NestFactory.createApplicationContext(BenchModule.forRoot(config), { logger: ['error', 'warn'] });
  const ds = app.get(DataSource);

  const dispatchers: Server[] = [];
  for (const [i, sshd] of sshds.entries()) {
    const privateIp = `127.${131 + i}.200.1`;
    const row = testServer(join(dir, `d${i + 1}`), `tasks${i + 1}.example.net`, ['dispatcher', 'handler'], sshd, { privateIp });
    const web = await startDispatcherWeb(join(dir, `web-${i + 1}`), row.nginxConfDir, privateIp);
    webs.push(web);
    const server = await ds.getRepository(Server).save({ ...row, nginxPidFile: web.pidFile });
    dispatchers.push(server);
    await ds.getRepository(ServerIp).save(Array.from({ length: SHARED_IPS }, (_, n) => ({ serverId: server.id, ip: `127.${131 + i}.100.${n + 1}`, kind: 'shared' as const, failoverGroup: null, activeServerId: null })));
  }
  const group = await ds.getRepository(SharedCodeGroup).save({
    name: 'tasks', tier: 'paid', repoUrl: '/nonexistent', revision: null, path: join(dir, 'd1/srv/shared_codes/tasks'), masterServerId: dispatchers[0]!.id,
    installLimit: 1_000_000, installCount: INSTALLS, pinned: false, manifest: JSON.parse(JSON.stringify(SAMPLE_MANIFEST)), state: 'ready',
  } as unknown as SharedCodeGroup);
  const hosts = await seedBaseInstalls(ds, dispatchers, group, INSTALLS, 'task');
  for (const d of dispatchers) for (const h of hosts) writeHome(d, h.fsName);
  // Site accounting: a 1 GB log on d1, counted there over SSH (first: the engine process's peak RSS is then its own).
  const logPath = join(dir, 'shops-access.log');
  let t = performance.now();
  // Written by a child process: the engine's peak memory below is the accounting's own.
  const bytes = writeLog(logPath, hosts.length, LOG_MB * 1024 * 1024);
  log(`generated ${(bytes / 1e6).toFixed(0)} MB of access log in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  const accounting = app.get(SiteAccounting);
  /**
   * One accounting pass from a reset cursor, with the engine process's RSS
   * sampled every 10 ms: its growth over the RSS before the pass (after a
   * GC) is what the pass holds, whatever the rest of the application holds.
   */
  const pass = async (path: string) => {
    await ds.getRepository(AccessLogCursor).clear();
    await ds.getRepository(SiteUsage).clear();
    collectGarbage();
    const before = process.memoryUsage().rss;
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
    const started = performance.now();
    try {
      const result = await accounting.account(dispatchers[0]!, path);
      return { result, s: (performance.now() - started) / 1000, growthMb: (Math.max(peak, process.memoryUsage().rss) - before) / 1024 / 1024 };
    } finally {
      clearInterval(sampler);
    }
  };
  // Constant memory: first a log an eighth of the size over the same hours (a line every 480 ms instead of 60), the same
  // passes. What a pass holds is bounded by the hosts and hours it counts, not by the bytes it reads.
  const smallPath = join(dir, 'shops-access-small.log');
  const smallBytes = writeLog(smallPath, hosts.length, Math.round((LOG_MB * 1024 * 1024) / 8), 480);
  const smallGrowth: number[] = [];
  let smallCounterKib = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const { result, s, growthMb } = await pass(smallPath);
    if (result.bytes !== smallBytes) throw new Error(`accounting read ${result.bytes} of ${smallBytes} bytes`);
    smallGrowth.push(growthMb);
    smallCounterKib = Math.max(smallCounterKib, result.counterPeakKib);
    log(`accounting of the small log, round ${r + 1}: ${(smallBytes / 1e6).toFixed(0)} MB in ${s.toFixed(2)} s, engine RSS +${growthMb.toFixed(1)} MB, counter ${(result.counterPeakKib / 1024).toFixed(1)} MB`);
  }
  rmSync(smallPath, { force: true });
  const mbps: number[] = [];
  const growth: number[] = [];
  let lines = 0;
  let unknown = 0;
  let counterKib = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const { result, s, growthMb } = await pass(logPath);
    if (result.bytes !== bytes) throw new Error(`accounting read ${result.bytes} of ${bytes} bytes`);
    lines = result.lines;
    unknown = result.unknownHostLines;
    counterKib = Math.max(counterKib, result.counterPeakKib);
    growth.push(growthMb);
    mbps.push(bytes / 1e6 / s);
    log(`accounting round ${r + 1}: ${result.lines} lines, ${(bytes / 1e6).toFixed(0)} MB in ${s.toFixed(2)} s: ${mbps.at(-1)!.toFixed(1)} MB/s, ${result.unknownHostLines} for no install, engine RSS +${growthMb.toFixed(1)} MB, counter ${(result.counterPeakKib / 1024).toFixed(1)} MB`);
  }
  const counted = await ds.getRepository(SiteUsage).sum('hits' as never);
  if (Number(counted) !== lines - unknown) throw new Error(`accounting counted ${counted} hits for ${lines} lines (${unknown} for no install)`);
  const rssMb = process.resourceUsage().maxRSS / 1024;
  // The log itself goes: the health rounds below must not share the page cache with 1 GB of it.
  rmSync(logPath, { force: true });

  // The rounds are measured against the nginx of 2,000 installs on both dispatchers.
  t = performance.now();
  for (const d of dispatchers) await app.get(NginxPipeline).apply(d);
  log(`${INSTALLS} live installs on both dispatchers, nginx applied in ${((performance.now() - t) / 1000).toFixed(1)} s`);

  // Site health: rounds over every live site through both dispatchers.
  const health = app.get(SiteHealth);
  const healthS: number[] = [];
  let requests = 0;
  let failing = 0;
  for (let r = 0; r < ROUNDS; r++) {
    t = performance.now();
    const result = await health.round();
    healthS.push((performance.now() - t) / 1000);
    requests = result.requests;
    failing = result.failing;
    log(`health round ${r + 1}: ${result.requests} requests, ${result.failing} failing, ${healthS.at(-1)!.toFixed(2)} s`);
  }
  if (failing > 0) throw new Error(`${failing} installs failed the health round: the bench's sites must answer`);

  // The scheduler: two engines, one catalog, a 1-second task.
  const taskLog = join(dir, 'tasks.log');
  const engine = join(process.cwd(), 'dist/test/support/task-engine.js');
  for (let i = 0; i < 2; i++) {
    const child = spawn(process.execPath, [engine], { env: cleanEnv({ CATALOG_URL: url('bench_sched'), SECRETS_KEY, ENGINE_ROLES: 'api,worker,cron', HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'warn', TASK_LOG: taskLog, VAR_DIR: join(dir, `sched-${i}`), TASK_SLOW_MS: '2500' }), stdio: ['ignore', 'pipe', 'pipe'] });
    engines.push(child);
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`no task engine in 60 s: ${out}`)), 60_000);
      const on = (c: Buffer) => {
        out += c.toString();
        if (/task engine \d+ ready/.test(out)) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout!.on('data', on);
      child.stderr!.on('data', on);
    });
  }
  await sleep(SCHEDULER_S * 1000);
  const events = existsSync(taskLog) ? readFileSync(taskLog, 'utf8').trim().split('\n').map((l) => l.split(' ')) : [];
  const counterTicks = events.filter((e) => e[0] === 'TestCounter').map((e) => e[1]!);
  const slowStarts = events.filter((e) => e[0] === 'TestSlow' && e[3] === 'start').map((e) => e[1]!);
  const duplicates = counterTicks.length - new Set(counterTicks).size + (slowStarts.length - new Set(slowStarts).size);
  log(`scheduler: ${counterTicks.length} runs of a 1 s task in ${SCHEDULER_S} s on two engines (${new Set(events.filter((e) => e[0] === 'TestCounter').map((e) => e[2])).size} ran it), ${slowStarts.length} of the 2.5 s task, ${duplicates} duplicate(s)`);

  process.stdout.write(
    JSON.stringify({
      bench: 'tasks',
      installs: INSTALLS,
      rounds: ROUNDS,
      load_start: round(load0, 2),
      load_end: round(loadavg()[0]!, 2),
      accounting_log_mb: round(bytes / 1e6, 0),
      accounting_lines: lines,
      accounting_mb_per_s: round(median(mbps), 1),
      accounting_mb_per_s_range: [round(Math.min(...mbps), 1), round(Math.max(...mbps), 1)],
      accounting_rss_mb: round(rssMb, 1),
      accounting_rss_growth_mb: round(median(growth), 1),
      accounting_counter_rss_mb: round(counterKib / 1024, 1),
      accounting_small_log_mb: round(smallBytes / 1e6, 0),
      accounting_small_rss_growth_mb: round(median(smallGrowth), 1),
      accounting_small_counter_rss_mb: round(smallCounterKib / 1024, 1),
      health_requests: requests,
      health_round_2000_s: round(median(healthS)),
      health_round_range_s: [round(Math.min(...healthS)), round(Math.max(...healthS))],
      scheduler_runs: counterTicks.length,
      scheduler_duplicate_runs: duplicates,
    }) + '\n',
  );
} finally {
  for (const child of engines) child.kill('SIGKILL');
  await app?.close();
  for (const web of webs) await stopDispatcherWeb(web);
  for (const sshd of sshds) await stopSshd(sshd);
  await stopMariadb(mariadb);
  if (process.env.BENCH_KEEP) log(`kept ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
}

/** The generator (bench/generate-access-log.ts) in its own process; returns the log's size. */
/** A full GC before measuring what a pass adds (the flag set at run time, as `--expose-gc` would). */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

function writeLog(path: string, hosts: number, size: number, gapMs = 60): number {
  execFileSync(process.execPath, [join(process.cwd(), 'dist/bench/generate-access-log.js'), path, String(hosts), String(size), String(gapMs)], { stdio: ['ignore', 'ignore', 'inherit'] });
  return statSync(path).size;
}
