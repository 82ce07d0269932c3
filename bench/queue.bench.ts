import 'reflect-metadata';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import type { DataSource } from 'typeorm';
import { createCatalogDataSource } from '@app/catalog';
import { loadConfig } from '@app/config';
import { JobRepository } from '@app/queue';
import { startMariadb, stopMariadb } from '../test/support/mariadb.js';
import { cleanEnv, spawnWorker, type WorkerProcess } from '../test/support/processes-engine.js';

/**
 * npm run bench -- queue
 *
 * No-op jobs on a private MariaDB with 4 real worker processes (the engine in
 * the worker role) on this machine: throughput claiming one job at a time
 * (WORKER_CONCURRENCY=1) and up to ten at a time (WORKER_CONCURRENCY=10);
 * claim latency of 4 concurrent claimers running the workers' claim code, and
 * their rate claiming and completing with no job work (claim_loop_jobs_per_s);
 * and how long a kill -9'd worker's job takes to be claimed by another worker
 * with the real 30 s lease (nothing fast-forwarded).
 */
const JOBS = Number(process.env.BENCH_JOBS ?? 3000);
const WORKERS = 4;
const SECRETS_KEY = '0f'.repeat(32);

const dir = mkdtempSync(join(tmpdir(), 'bench-queue-'));
const log = (line: string) => process.stderr.write(line + '\n');
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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

  /** Jobs per second for `WORKERS` worker processes with the given concurrency. */
  const throughput = async (concurrency: number): Promise<number> => {
    await db!.query('DELETE FROM jobs');
    const env = cleanEnv({ CATALOG_URL: url, SECRETS_KEY, LOG_LEVEL: 'warn', WORKER_POLL_MS: '200', WORKER_CONCURRENCY: String(concurrency) });
    const started = await Promise.all(Array.from({ length: WORKERS }, () => spawnWorker({ ...env, LOG_LEVEL: 'info' })));
    workers.push(...started);
    await fill(JOBS);
    const t0 = performance.now();
    while ((await count('done')) < JOBS) await sleep(50);
    const seconds = (performance.now() - t0) / 1000;
    for (const w of started) {
      w.child.kill('SIGTERM');
      await w.exited;
    }
    workers.splice(0);
    log(`concurrency ${concurrency}: ${JOBS} jobs in ${seconds.toFixed(2)} s`);
    return JOBS / seconds;
  };

  const jobsPerS = await throughput(1);
  const jobsPerSBatched = await throughput(10);

  // Claim latency: 4 claimers in this process, each on its own connection, claim one job and complete it.
  await db.query('DELETE FROM jobs');
  await fill(2000);
  const latencies: number[] = [];
  const loopStarted = performance.now();
  await Promise.all(
    Array.from({ length: WORKERS }, async (_, w) => {
      for (;;) {
        const t = performance.now();
        const [job] = await jobs.claim(`bench-${w}`, 1, () => 30_000);
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
  latencies.sort((a, b) => a - b);

  // Recovery: a worker dies holding a job; another is idle. Real lease (30 s) and reaper (5 s).
  await db.query('DELETE FROM jobs');
  const env = cleanEnv({ CATALOG_URL: url, SECRETS_KEY, LOG_LEVEL: 'info', WORKER_POLL_MS: '500' });
  const victim = await spawnWorker(env);
  workers.push(victim);
  const { job } = await jobs.enqueue({ kind: 'engine.noop', payload: { sleepMs: 60_000 }, maxAttempts: 3 });
  while ((await jobs.findById(job.id))?.leaseOwner !== victim.owner) await sleep(50);
  const rescuer = await spawnWorker(env);
  workers.push(rescuer);
  victim.child.kill('SIGKILL');
  const killedAt = performance.now();
  await victim.exited;
  while ((await jobs.findById(job.id))?.leaseOwner !== rescuer.owner) await sleep(100);
  const recoveryS = (performance.now() - killedAt) / 1000;
  log(`recovery: claimed by another worker ${recoveryS.toFixed(1)} s after kill -9`);

  process.stdout.write(
    JSON.stringify({
      bench: 'queue',
      jobs: JOBS,
      workers: WORKERS,
      jobs_per_s: Math.round(jobsPerS),
      jobs_per_s_batched: Math.round(jobsPerSBatched),
      claim_p50_ms: Number(percentile(latencies, 50).toFixed(2)),
      claim_p99_ms: Number(percentile(latencies, 99).toFixed(2)),
      claim_loop_jobs_per_s: Math.round(claimLoopJobsPerS),
      recovery_s: Number(recoveryS.toFixed(1)),
    }) + '\n',
  );
} finally {
  for (const w of workers) w.child.kill('SIGKILL');
  await db?.destroy();
  await stopMariadb(server);
  rmSync(dir, { recursive: true, force: true });
}
