import 'reflect-metadata';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import type { DataSource } from 'typeorm';
import { createCatalogDataSource } from '@app/catalog';
import { loadConfig } from '@app/config';
import { JobRepository, MAX_LEASE_MS } from '@app/queue';
import { startMariadb, stopMariadb } from '../test/support/mariadb.js';
import { cleanEnv, ENGINE_MAIN, spawnWorker, type WorkerProcess } from '../test/support/processes-engine.js';
import { CLOCK_TICKS } from './codebase-update-support.js';
import { RawClaimerProcesses, RawClaimers } from './raw-claim.js';

/**
 * npm run bench -- queue
 *
 * No-op jobs on a private MariaDB with 4 real worker processes (the engine in
 * the worker role, default poll interval) on this machine.
 * - Throughput claiming one job at a time (WORKER_CONCURRENCY=1) and up to
 *   ten at a time (WORKER_CONCURRENCY=10): the workers are started and idle,
 *   the clock starts, the jobs are inserted, the clock stops when the last
 *   is done; BENCH_RUNS runs each, median and range.
 * - Its baselines, in the same run (issue 20): the same claim-and-complete
 *   statements as plain SQL over mysql2 (bench/raw-claim.ts), the same
 *   number of jobs on the same table, clocked the same way, in rounds
 *   alternating with the single-claim runs; each `engine_share*` is
 *   jobs_per_s over its baseline (medians), and per round:
 *   `raw_claim_jobs_per_s` (`engine_share`): 4 connections in one process,
 *   claim and complete only, the baseline as first defined;
 *   `raw_claim_processes_jobs_per_s` (`engine_share_processes`): 4
 *   processes of one connection each, as the engine's 4 workers are;
 *   `raw_claim_output_jobs_per_s` (`engine_share_same_work`): 4 processes
 *   that also write each job's output line into job_logs, as the engine's
 *   worker does for a no-op job (its handler says "noop"): the same
 *   statements in the same processes, so the rest is the engine's code.
 * - Claim latency of 4 concurrent claimers running the workers' claim code,
 *   and their rate claiming and completing with no job work.
 * - Recovery after kill -9 of the worker holding a job, nothing
 *   fast-forwarded: `recovery_s` until a worker restarted on the same host
 *   (as systemd would restart it) runs the job again, its start included
 *   (`recovery_after_restart_s`: from its start); `recovery_peer_s` until an
 *   idle worker already running on the same host does (killed halfway
 *   through its 5 s reaper period); `recovery_other_host_s` until a worker that
 *   cannot see the dead one's pids (another pid namespace, as another
 *   machine or container) does: the lease's expiry, then its reaper.
 */
const JOBS = Number(process.env.BENCH_JOBS ?? 3000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const WORKERS = 4;
const SECRETS_KEY = '0f'.repeat(32);
/** A worker's start on a busy shared machine can take long; the bench waits for it rather than fail. */
const BOOT_TIMEOUT_MS = 120_000;

const dir = mkdtempSync(join(tmpdir(), 'bench-queue-'));
const log = (line: string) => process.stderr.write(line + '\n');
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Whether this process can start a worker in a new pid namespace (root, and a kernel that allows it). */
function canUnsharePids(): boolean {
  if (process.getuid?.() !== 0) return false;
  try {
    execFileSync('unshare', ['--pid', '--fork', '--kill-child', 'true'], { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch (error) {
    log(`no other pid namespace here (${(error as Error).message}): recovery_other_host_s not measured`);
    return false;
  }
}

/**
 * A worker in a pid namespace of its own: for the queue it is on another
 * host (it cannot tell whether a pid of this one runs). `unshare` is
 * killed with the worker (--kill-child): SIGKILL to `child` kills both.
 */
async function spawnWorkerElsewhere(env: NodeJS.ProcessEnv): Promise<WorkerProcess> {
  const child = spawn('unshare', ['--pid', '--fork', '--kill-child', process.execPath, ENGINE_MAIN], {
    env: { ...env, ENGINE_ROLES: 'worker' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<number | NodeJS.Signals | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
  const owner = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`no worker start in ${BOOT_TIMEOUT_MS} ms:\n${output}`));
    }, BOOT_TIMEOUT_MS);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const found = /worker (\S+) started/.exec(output)?.[1];
      if (found) {
        clearTimeout(timer);
        resolve(found);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    void exited.then((code) => reject(new Error(`the worker exited with ${code}:\n${output}`)));
  });
  return { child, owner, output: () => output, exited };
}

const loadAtStart = Number(loadavg()[0]!.toFixed(2));
const server = await startMariadb(join(dir, 'mariadb'));
const workers: WorkerProcess[] = [];
let db: DataSource | null = null;
try {
  const admin = await mysql.createConnection({ host: server.host, port: server.port, user: server.adminUser, password: server.adminPassword });
  await admin.query('CREATE DATABASE bench');
  await admin.end();
  const url = `mysql://${encodeURIComponent(server.adminUser)}:${encodeURIComponent(server.adminPassword)}@${server.host}:${server.port}/bench`;
  db = await createCatalogDataSource(loadConfig({ CATALOG_URL: url, SECRETS_KEY }).catalog);
  await db.initialize();
  await db.runMigrations({ transaction: 'each' });
  const jobs = new JobRepository(db);
  // Production settings: the default poll interval (WORKER_POLL_MS unset); info logs, for the worker's start line.
  // BENCH_WORKER_NODE_OPTIONS: node options for the workers, to profile them (e.g. --cpu-prof).
  const profiling: Record<string, string> = process.env.BENCH_WORKER_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_WORKER_NODE_OPTIONS } : {};
  const workerEnv = (extra: Record<string, string> = {}) => cleanEnv({ CATALOG_URL: url, SECRETS_KEY, LOG_LEVEL: 'info', ...profiling, ...extra });
  const stop = async (w: WorkerProcess, signal: NodeJS.Signals = 'SIGTERM') => {
    w.child.kill(signal);
    await w.exited;
    workers.splice(workers.indexOf(w), 1);
  };

  /** Inserts `n` ready no-op jobs in a few multi-row statements. */
  const fill = async (n: number) => {
    for (let done = 0; done < n; done += 500) {
      const rows = Math.min(500, n - done);
      await db!.query(
        `INSERT INTO jobs (kind, payload, state, priority, run_after, attempts, max_attempts, fence) VALUES ` +
          Array.from({ length: rows }, () => `('engine.noop', '{}', 'ready', 0, UTC_TIMESTAMP(3), 0, 3, 0)`).join(', '),
      );
    }
  };
  const count = async (state: string) => Number((await db!.query(`SELECT COUNT(*) AS n FROM jobs WHERE state = ?`, [state]))[0].n);

  /** Start of the first claim and end of the last completion of this round's jobs, by the database clock. */
  const activeSeconds = async () => {
    const [row] = await db!.query(`SELECT TIMESTAMPDIFF(MICROSECOND, MIN(started_at), MAX(finished_at)) AS us FROM jobs WHERE state = 'done'`);
    return Number(row.us) / 1e6;
  };

  /** CPU time (user + system, ms) a process has used, from /proc. */
  /** CPU time of a process (user and system), or its system part only. */
  const cpuMs = (pid: number, part: 'all' | 'sys' = 'all') => {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((part === 'sys' ? 0 : Number(fields[11])) + Number(fields[12])) * 1000 / CLOCK_TICKS;
  };
  const STATEMENTS = ['Com_select', 'Com_update', 'Com_insert', 'Com_begin', 'Com_commit', 'Com_set_option', 'Com_delete'];
  const statusCounts = async () => {
    const rows: { Variable_name: string; Value: string }[] = await db!.query(`SHOW GLOBAL STATUS WHERE Variable_name IN (${STATEMENTS.map(() => '?').join(', ')})`, STATEMENTS);
    return new Map(rows.map((r) => [r.Variable_name.toLowerCase(), Number(r.Value)]));
  };
  /**
   * Where a round's time goes: CPU ms per job of the engine's workers, this
   * process (the raw claimers, the fill and the polling) and mariadbd, and
   * the statements per job the server received (all clients).
   */
  const profile = async (pids: number[], jobCount = JOBS) => {
    const sum = (part: 'all' | 'sys') => pids.reduce((a, pid) => a + cpuMs(pid, part), 0);
    const cpu0 = { workers: sum('all'), workersSys: sum('sys'), bench: cpuMs(process.pid), benchSys: cpuMs(process.pid, 'sys'), db: cpuMs(server.pid), dbSys: cpuMs(server.pid, 'sys') };
    const com0 = await statusCounts();
    return async () => {
      const com1 = await statusCounts();
      const perJob = (ms: number) => (ms / jobCount).toFixed(2);
      const cpu =
        `cpu ms/job (of it system): workers ${perJob(sum('all') - cpu0.workers)} (${perJob(sum('sys') - cpu0.workersSys)}), ` +
        `bench ${perJob(cpuMs(process.pid) - cpu0.bench)} (${perJob(cpuMs(process.pid, 'sys') - cpu0.benchSys)}), ` +
        `mariadbd ${perJob(cpuMs(server.pid) - cpu0.db)} (${perJob(cpuMs(server.pid, 'sys') - cpu0.dbSys)})`;
      const statements = STATEMENTS.map((name) => `${name.slice(4)} ${((com1.get(name.toLowerCase())! - com0.get(name.toLowerCase())!) / jobCount).toFixed(2)}`).join(', ');
      return `${cpu}; statements/job: ${statements}`;
    };
  };

  /** A raw baseline (bench/raw-claim.ts): its claimers, and what it is called in the log and the JSON. */
  interface Baseline {
    name: string;
    label: string;
    claimers: RawClaimers | RawClaimerProcesses;
  }

  /**
   * Jobs per second for `WORKERS` worker processes with the given
   * concurrency, one figure per run. The workers are started first and wait
   * idle; each run's clock starts before its jobs are inserted. Each run
   * also measures every baseline: the same number of jobs claimed and
   * completed by plain SQL (bench/raw-claim.ts), clocked the same way, the
   * engine's workers stopped (SIGSTOP) meanwhile; the engine's round goes
   * first in even runs, last in odd ones.
   */
  const throughput = async (concurrency: number, baselines: Baseline[] = []): Promise<{ engine: number[]; raw: Map<string, number[]> }> => {
    await db!.query('DELETE FROM jobs');
    const started = await Promise.all(Array.from({ length: WORKERS }, () => spawnWorker(workerEnv({ WORKER_CONCURRENCY: String(concurrency) }), BOOT_TIMEOUT_MS)));
    workers.push(...started);
    const engineRates: number[] = [];
    const rawRates = new Map(baselines.map((b) => [b.name, [] as number[]]));
    const engineRun = async (run: number) => {
      await db!.query('DELETE FROM jobs');
      const profiled = await profile(started.map((w) => w.child.pid!));
      const t0 = performance.now();
      await fill(JOBS);
      while ((await count('done')) < JOBS) await sleep(50);
      const seconds = (performance.now() - t0) / 1000;
      engineRates.push(JOBS / seconds);
      const active = await activeSeconds();
      log(`concurrency ${concurrency}, run ${run + 1}: ${JOBS} jobs in ${seconds.toFixed(2)} s (${Math.round(JOBS / seconds)} jobs/s; first claim to last completion ${active.toFixed(2)} s, ${Math.round(JOBS / active)} jobs/s) [load ${loadavg()[0]!.toFixed(2)}]`);
      log(`  ${await profiled()}`);
    };
    const rawRun = async (run: number, baseline: Baseline) => {
      for (const w of started) w.child.kill('SIGSTOP');
      try {
        // Stopped before the jobs exist: a worker still running would take some of them (seen once under perf).
        const stateOf = (pid: number) => readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0];
        while (!started.every((w) => stateOf(w.child.pid!) === 'T')) await sleep(5);
        await db!.query('DELETE FROM jobs');
        const profiled = await profile(baseline.claimers instanceof RawClaimerProcesses ? baseline.claimers.pids : []);
        const t0 = performance.now();
        await fill(JOBS);
        const completed = await baseline.claimers.drain(concurrency);
        const seconds = (performance.now() - t0) / 1000;
        if (completed !== JOBS || (await count('done')) !== JOBS) throw new Error(`raw claimers (${baseline.name}) completed ${completed} of ${JOBS} jobs`);
        rawRates.get(baseline.name)!.push(JOBS / seconds);
        const active = await activeSeconds();
        log(`raw SQL (${baseline.label}), ${concurrency} a claim, run ${run + 1}: ${JOBS} jobs in ${seconds.toFixed(2)} s (${Math.round(JOBS / seconds)} jobs/s; first claim to last completion ${active.toFixed(2)} s, ${Math.round(JOBS / active)} jobs/s) [load ${loadavg()[0]!.toFixed(2)}]`);
        log(`  ${await profiled()} (${baseline.claimers instanceof RawClaimerProcesses ? 'workers = the raw claimer processes' : 'bench = the raw claimers'})`);
      } finally {
        for (const w of started) w.child.kill('SIGCONT');
      }
    };
    for (let run = 0; run < RUNS; run++) {
      if (run % 2 === 0) await engineRun(run);
      for (const baseline of baselines) await rawRun(run, baseline);
      if (run % 2 === 1) await engineRun(run);
    }
    for (const w of started) await stop(w);
    return { engine: engineRates, raw: rawRates };
  };

  const rawOptions = { host: server.host, port: server.port, user: server.adminUser, password: server.adminPassword, database: 'bench' };
  const baselines: Baseline[] = [
    { name: 'one_process', label: 'one process, 4 connections', claimers: await RawClaimers.open(rawOptions, WORKERS) },
    { name: 'processes', label: '4 processes', claimers: await RawClaimerProcesses.open(rawOptions, WORKERS) },
    { name: 'processes_output', label: '4 processes, and the job\'s output line', claimers: await RawClaimerProcesses.open(rawOptions, WORKERS, true) },
  ];
  let singleRuns: { engine: number[]; raw: Map<string, number[]> };
  try {
    singleRuns = await throughput(1, baselines);
  } finally {
    for (const baseline of baselines) await baseline.claimers.close();
  }
  const single = singleRuns.engine;
  const batched = (await throughput(10)).engine;

  // Claim latency: 4 claimers in this process, each on its own connection, claim one job and complete it.
  await db.query('DELETE FROM jobs');
  await fill(2000);
  const latencies: number[] = [];
  const loopProfiled = await profile([], 2000);
  const loopStarted = performance.now();
  await Promise.all(
    Array.from({ length: WORKERS }, async (_, w) => {
      for (;;) {
        const t = performance.now();
        const [job] = await jobs.claim(`bench-${w}`, 1, () => MAX_LEASE_MS);
        latencies.push(performance.now() - t);
        if (!job) {
          if ((await count('ready')) === 0) return;
          continue;
        }
        await jobs.complete(job.id, job.fence);
      }
    }),
  );
  const claimLoopJobsPerS = 2000 / ((performance.now() - loopStarted) / 1000);
  log(`claim loop (the engine's JobRepository, ${WORKERS} claimers in this process): ${Math.round(claimLoopJobsPerS)} jobs/s [load ${loadavg()[0]!.toFixed(2)}]`);
  log(`  ${await loopProfiled()}`);
  latencies.sort((a, b) => a - b);

  /**
   * A worker dies (kill -9) holding a job that would run for a minute; the
   * clock runs from the kill until `rescuer` (started by `afterKill`, or
   * already running) holds the job. Real leases and reaper periods.
   */
  const recovery = async (label: string, rescue: (victim: WorkerProcess) => Promise<{ afterKill: () => Promise<WorkerProcess> }>) => {
    await db!.query('DELETE FROM jobs');
    const victim = await spawnWorker(workerEnv(), BOOT_TIMEOUT_MS);
    workers.push(victim);
    const { job } = await jobs.enqueue({ kind: 'engine.noop', payload: { sleepMs: 60_000 }, maxAttempts: 3 });
    while ((await jobs.findById(job.id))?.leaseOwner !== victim.owner) await sleep(50);
    const { afterKill } = await rescue(victim);
    victim.child.kill('SIGKILL');
    const killedAt = performance.now();
    await victim.exited;
    workers.splice(workers.indexOf(victim), 1);
    const rescuer = await afterKill();
    const startedAt = performance.now();
    while ((await jobs.findById(job.id))?.leaseOwner !== rescuer.owner) await sleep(50);
    const now = performance.now();
    const seconds = (now - killedAt) / 1000;
    const afterStart = (now - startedAt) / 1000;
    log(`${label}: the job runs again ${seconds.toFixed(1)} s after kill -9 (the rescuer ready ${((startedAt - killedAt) / 1000).toFixed(1)} s after it)`);
    await stop(rescuer, 'SIGKILL');
    return { seconds, afterStart };
  };

  const recoveryS = await recovery('restarted on the same host', async () => ({
    afterKill: async () => {
      const restarted = await spawnWorker(workerEnv(), BOOT_TIMEOUT_MS);
      workers.push(restarted);
      return restarted;
    },
  }));
  // Killed halfway through the peer's reaper period (5 s), well after the reap it does as it starts.
  const recoveryPeerS = await recovery('idle worker on the same host', async () => {
    const peer = await spawnWorker(workerEnv(), BOOT_TIMEOUT_MS);
    workers.push(peer);
    await sleep(2_500);
    return { afterKill: async () => peer };
  });
  const recoveryOtherHostS = canUnsharePids()
    ? await recovery('idle worker on another host', async () => {
        const elsewhere = await spawnWorkerElsewhere(workerEnv());
        workers.push(elsewhere);
        return { afterKill: async () => elsewhere };
      })
    : null;

  const rates = (xs: number[]) => ({ median: Math.round(median(xs)), min: Math.round(Math.min(...xs)), max: Math.round(Math.max(...xs)) });
  const s = rates(single);
  const b = rates(batched);
  const rawOf = (name: string) => singleRuns.raw.get(name)!;
  const share = (name: string) => Number((median(single) / median(rawOf(name))).toFixed(3));
  const shareRounds = (name: string) => single.map((e, i) => Number((e / rawOf(name)[i]!).toFixed(3)));
  const r = rates(rawOf('one_process'));
  const rp = rates(rawOf('processes'));
  const ro = rates(rawOf('processes_output'));
  process.stdout.write(
    JSON.stringify({
      bench: 'queue',
      jobs: JOBS,
      workers: WORKERS,
      runs: RUNS,
      load_1m: [loadAtStart, Number(loadavg()[0]!.toFixed(2))],
      jobs_per_s: s.median,
      jobs_per_s_min: s.min,
      jobs_per_s_max: s.max,
      raw_claim_jobs_per_s: r.median,
      raw_claim_jobs_per_s_min: r.min,
      raw_claim_jobs_per_s_max: r.max,
      engine_share: share('one_process'),
      engine_share_rounds: shareRounds('one_process'),
      raw_claim_processes_jobs_per_s: rp.median,
      raw_claim_processes_jobs_per_s_min: rp.min,
      raw_claim_processes_jobs_per_s_max: rp.max,
      engine_share_processes: share('processes'),
      engine_share_processes_rounds: shareRounds('processes'),
      raw_claim_output_jobs_per_s: ro.median,
      raw_claim_output_jobs_per_s_min: ro.min,
      raw_claim_output_jobs_per_s_max: ro.max,
      engine_share_same_work: share('processes_output'),
      engine_share_same_work_rounds: shareRounds('processes_output'),
      jobs_per_s_batched: b.median,
      jobs_per_s_batched_min: b.min,
      jobs_per_s_batched_max: b.max,
      claim_p50_ms: Number(percentile(latencies, 50).toFixed(2)),
      claim_p99_ms: Number(percentile(latencies, 99).toFixed(2)),
      claim_loop_jobs_per_s: Math.round(claimLoopJobsPerS),
      recovery_s: Number(recoveryS.seconds.toFixed(1)),
      recovery_after_restart_s: Number(recoveryS.afterStart.toFixed(1)),
      recovery_peer_s: Number(recoveryPeerS.seconds.toFixed(1)),
      recovery_other_host_s: recoveryOtherHostS === null ? null : Number(recoveryOtherHostS.seconds.toFixed(1)),
    }) + '\n',
  );
} finally {
  for (const w of workers) w.child.kill('SIGKILL');
  await Promise.all(workers.map((w) => w.exited));
  await db?.destroy();
  await stopMariadb(server);
  rmSync(dir, { recursive: true, force: true });
}
