import 'reflect-metadata';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import mysql from 'mysql2/promise';
import { DataSource, In } from 'typeorm';
import { InstallServer, Server } from '@app/catalog';
import { loadConfig } from '@app/config';
import { PoolPipeline, type PoolApplyReport } from '@app/webserver';
import { startEngine, type RunningEngine } from '../apps/engine/src/start-engine.js';
import { childrenOf, createInstallUser, fastcgiRequest, handlerFpmPid, masterRssKb, removeInstallUser, startHandlerFpm, stopHandlerFpm, type HandlerFpm } from '../test/support/handler-fpm.js';
import { startMariadb, stopMariadb } from '../test/support/mariadb.js';
import { phpFpmBinary } from '../test/support/php-fpm.js';
import { testServer } from '../test/support/server-roots.js';
import { startSshd, stopSshd } from '../test/support/sshd.js';
import type { SshdServer } from '../test/support/testbed.js';
import { codeGroupFor, seedWebInstalls } from '../test/support/web-installs.js';

/**
 * npm run bench -- handlers
 *
 * One handler that is also a dispatcher (its pools listen on unix sockets),
 * reached over SSH (private sshd on a loopback address), with a real
 * php-fpm master running as root whose php-fpm.conf includes the pool
 * dir's `current/*.conf`; a private MariaDB as catalog; 2,000 installs, each
 * with its system user (made with useradd, removed after). Measured in the
 * same run, on the same files: the engine's first apply, then rounds of a
 * one-install change applied (a new install on the handler: render all,
 * write one file, `php-fpm -t`, swap, SIGUSR2, wait for the master and
 * every pool) against php-fpm's own `php-fpm -t` of the master's config and
 * its own reload (SIGUSR2, then waiting by /proc for the master to be back
 * in its event loop, independently of the engine's code), in alternating
 * order; medians and range. Then the idle memory of the master and its
 * processes with every pool loaded (ondemand: no worker runs) minus the
 * master alone (its sentinel pool only, measured before the first apply).
 */
const POOLS = Number(process.env.BENCH_POOLS ?? 2_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 6);
const WARMUP_RELOADS = 2;
const SECRETS_KEY = '0f'.repeat(32);
/** Install ids (users shop<id>) of the bench's own range, clear of the test suites'. */
const FIRST_ID = 1_050_001;
const log = (line: string) => process.stderr.write(line + '\n');
const seconds = (ms: number) => Number((ms / 1000).toFixed(3));
const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
const range = (xs: number[]) => [seconds(Math.min(...xs)), seconds(Math.max(...xs))];

/** php-fpm's own reload: SIGUSR2, then until the pid file is rewritten and the master sleeps in its event loop again. */
async function ownReload(fpm: HandlerFpm): Promise<number> {
  const pid = handlerFpmPid(fpm);
  if (pid === null) throw new Error('no php-fpm master');
  const before = statSync(fpm.pidFile).mtimeMs;
  const t = performance.now();
  process.kill(pid, 'SIGUSR2');
  for (;;) {
    await sleep(5);
    let mtime = before;
    try {
      mtime = statSync(fpm.pidFile).mtimeMs;
    } catch {
      // Being rewritten.
    }
    if (mtime !== before) {
      const now = handlerFpmPid(fpm);
      if (now !== null && /poll|select|wait/.test(readFileSync(`/proc/${now}/wchan`, 'utf8'))) return performance.now() - t;
    }
    if (performance.now() - t > 300_000) throw new Error('php-fpm did not come back within 300 s');
  }
}

function ownTest(fpm: HandlerFpm): number {
  const t = performance.now();
  execFileSync(phpFpmBinary()!, ['-t', '-y', fpm.conf], { stdio: 'ignore' });
  return performance.now() - t;
}

async function bench(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the handlers bench runs php-fpm as root and makes system users: run it as root');
  const dir = mkdtempSync(join(tmpdir(), 'bench-handlers-'));
  chmodSync(dir, 0o755);
  const mariadb = await startMariadb(join(dir, 'mariadb'));
  let sshd: SshdServer | null = null;
  let fpm: HandlerFpm | null = null;
  let engine: RunningEngine | null = null;
  const users: number[] = [];
  try {
    sshd = await startSshd(join(dir, 'sshd'), '127.0.105.13');
    const admin = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: mariadb.adminUser, password: mariadb.adminPassword });
    await admin.query('CREATE DATABASE bench');
    await admin.end();
    const url = `mysql://${encodeURIComponent(mariadb.adminUser)}:${encodeURIComponent(mariadb.adminPassword)}@${mariadb.host}:${mariadb.port}/bench`;
    engine = await startEngine(loadConfig({ CATALOG_URL: url, SECRETS_KEY, PORT: '0', LOG_LEVEL: 'warn', ENGINE_ROLES: 'api', VAR_DIR: join(dir, 'var') }));
    const ds = engine.app.get(DataSource);
    const pipeline = engine.app.get(PoolPipeline);
    await ds.query(`ALTER TABLE installs AUTO_INCREMENT = ${FIRST_ID}`);

    const poolDir = join(dir, 'h1/srv/php-pools');
    fpm = await startHandlerFpm(join(dir, 'fpm'), poolDir);
    const server = await ds.getRepository(Server).save(testServer(join(dir, 'h1'), 'benchhandler.example.net', ['dispatcher', 'handler'], sshd, { privateIp: '127.0.105.250', phpFpmPoolDir: poolDir, phpFpmPidFile: fpm.pidFile }));
    const group = await codeGroupFor(ds, server);

    let t = performance.now();
    const total = POOLS + ROUNDS;
    const installs = await seedWebInstalls(ds, server, group, Array.from({ length: total }, (_, i) => ({ fsName: `p${i}`, hostname: `p${i}.bench.example.org`, ip: '127.0.105.251' })), { homes: false });
    // The installs the rounds add, one each: not on the handler yet.
    const extra = installs.slice(POOLS);
    await ds.getRepository(InstallServer).update({ serverId: server.id, installId: In(extra.map((i) => i.id)) }, { state: 'removing' });
    log(`seeded ${installs.length} installs in ${seconds(performance.now() - t)} s`);
    t = performance.now();
    for (const install of installs) {
      // Not --system: Debian's system uid range (100-999) holds fewer than 900 accounts.
      createInstallUser(install.id, join(server.homeRoot, install.fsName), { system: false });
      users.push(install.id);
    }
    log(`made ${users.length} system users in ${seconds(performance.now() - t)} s`);
    // One home with a script, to see a pool answer as its user at the end.
    const probeHome = join(server.homeRoot, 'p0');
    mkdirSync(join(probeHome, 'html'), { recursive: true, mode: 0o755 });
    mkdirSync(join(probeHome, 'data'), { recursive: true, mode: 0o755 });
    execFileSync('chown', [`shop${installs[0]!.id}:`, join(probeHome, 'data')]);
    writeFileSync(join(probeHome, 'html/w.php'), '<?php file_put_contents(__DIR__ . "/../data/w.txt", "x"); echo "ok";\n', { mode: 0o644 });

    await sleep(500);
    const aloneKb = masterRssKb(handlerFpmPid(fpm)!);
    log(`master alone (sentinel pool): ${(aloneKb / 1024).toFixed(1)} MB`);

    t = performance.now();
    const first = await pipeline.apply(server);
    const firstMs = performance.now() - t;
    check(first, POOLS);
    log(`first apply: ${seconds(firstMs)} s (${JSON.stringify(first.timings)}), ${first.filesWritten} files written`);
    for (let i = 0; i < WARMUP_RELOADS; i++) log(`warm-up: php-fpm -t ${seconds(ownTest(fpm))} s, reload ${seconds(await ownReload(fpm))} s (not counted)`);

    const owns: { testMs: number; reloadMs: number }[] = [];
    const ones: { ms: number; report: PoolApplyReport }[] = [];
    const own = async () => {
      const o = { testMs: ownTest(fpm!), reloadMs: await ownReload(fpm!) };
      owns.push(o);
      log(`php-fpm -t ${seconds(o.testMs)} s, reload ${seconds(o.reloadMs)} s`);
    };
    const one = async (round: number) => {
      await ds.getRepository(InstallServer).update({ serverId: server.id, installId: extra[round]!.id }, { state: 'active' });
      t = performance.now();
      const report = await pipeline.apply(server);
      ones.push({ ms: performance.now() - t, report });
      check(report, POOLS + round + 1);
      log(`one-install change applied in ${seconds(ones.at(-1)!.ms)} s (${JSON.stringify(report.timings)}), ${report.filesWritten} file(s) written`);
    };
    for (let round = 0; round < ROUNDS; round++) {
      if (round % 2 === 0) {
        await own();
        await one(round);
      } else {
        await one(round);
        await own();
      }
    }

    // Idle: ondemand pools start no worker until a request comes.
    await sleep(1000);
    const masterPid = handlerFpmPid(fpm)!;
    const children = childrenOf(masterPid).length;
    const withPoolsKb = masterRssKb(masterPid);
    log(`master with ${POOLS + ROUNDS} pools: ${(withPoolsKb / 1024).toFixed(1)} MB, ${children} worker(s)`);

    // A pool answers, as its own user.
    const answer = await fastcgiRequest(join(poolDir, 'run/p0.sock'), join(probeHome, 'html/w.php'));
    const owner = execFileSync('stat', ['-c', '%U', join(probeHome, 'data/w.txt')]).toString().trim();
    if (answer.body !== 'ok' || owner !== `shop${installs[0]!.id}`) throw new Error(`p0 answered ${answer.head} ${answer.body}; its file is ${owner}'s`);

    const ownTotal = median(owns.map((o) => o.testMs + o.reloadMs));
    process.stdout.write(
      JSON.stringify({
        bench: 'handlers',
        pools: POOLS,
        rounds: ROUNDS,
        apply_overhead_ratio: Number((median(ones.map((o) => o.ms)) / ownTotal).toFixed(3)),
        files_written_one_change: Math.max(...ones.map((o) => o.report.filesWritten)),
        idle_rss_mb: Number(((withPoolsKb - aloneKb) / 1024).toFixed(1)),
        idle_workers: children,
        fpm_test_s: seconds(median(owns.map((o) => o.testMs))),
        fpm_test_s_range: range(owns.map((o) => o.testMs)),
        fpm_reload_s: seconds(median(owns.map((o) => o.reloadMs))),
        fpm_reload_s_range: range(owns.map((o) => o.reloadMs)),
        fpm_test_reload_s: seconds(ownTotal),
        apply_s: seconds(median(ones.map((o) => o.ms))),
        apply_s_range: range(ones.map((o) => o.ms)),
        apply_test_s: seconds(median(ones.map((o) => o.report.timings.testMs))),
        apply_reload_s: seconds(median(ones.map((o) => o.report.timings.reloadMs))),
        apply_engine_own_s: seconds(median(ones.map((o) => o.ms - o.report.timings.testMs - o.report.timings.reloadMs))),
        first_apply_s: seconds(firstMs),
        master_alone_rss_mb: Number((aloneKb / 1024).toFixed(1)),
        master_with_pools_rss_mb: Number((withPoolsKb / 1024).toFixed(1)),
      }) + '\n',
    );
  } catch (error) {
    if (fpm) log(execFileSync('tail', ['-n', '20', fpm.logPath]).toString());
    throw error;
  } finally {
    await engine?.close();
    if (fpm) await stopHandlerFpm(fpm);
    if (sshd) await stopSshd(sshd);
    await stopMariadb(mariadb);
    const t = performance.now();
    for (const id of users) removeInstallUser(id);
    if (users.length > 0) log(`removed ${users.length} system users in ${seconds(performance.now() - t)} s`);
    rmSync(dir, { recursive: true, force: true });
  }
}

function check(report: PoolApplyReport, pools: number): void {
  if (report.fpm !== 'reloaded' || report.quarantined.length > 0 || report.pools !== pools) throw new Error(`apply: ${report.fpm}, ${report.pools} pools, quarantined ${JSON.stringify(report.quarantined.slice(0, 3))}`);
}

await bench();
