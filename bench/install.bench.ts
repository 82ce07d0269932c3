import 'reflect-metadata';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { DataSource } from 'typeorm';
import { ApiTokensService } from '@app/auth';
import { Install, Server, ServerIp, SharedCodeGroup } from '@app/catalog';
import { buildSampleRepository, SAMPLE_MANIFEST } from '@app/codebases';
import { loadConfig } from '@app/config';
import { startEngine, type RunningEngine } from '../apps/engine/src/start-engine.js';
import { startMariadb, stopMariadb } from '../test/support/mariadb.js';
import { checkoutGroup, testServer } from '../test/support/server-roots.js';
import { startSshd, stopSshd } from '../test/support/sshd.js';
import type { SshdServer } from '../test/support/testbed.js';

/**
 * npm run bench -- install
 *
 * Paid installs on two SSH test dispatchers (private sshd on their own
 * loopback addresses), a private MariaDB as catalog and tenant database
 * server, the sample codebase: order-to-live latency of one install at a
 * time (POST /v1/installs until the install is live), then a burst of 100
 * orders at once until all are live. Every build runs all ten steps for
 * real (rsync to the second dispatcher, the nginx pipeline's coalesced rebuilds
 * with nginx -t, mail as .eml).
 */
const LATENCY_ORDERS = Number(process.env.BENCH_ORDERS ?? 20);
const BURST = 100;
const SECRETS_KEY = '0f'.repeat(32);
const dir = mkdtempSync(join(tmpdir(), 'bench-install-'));
chmodSync(dir, 0o755);
const log = (line: string) => process.stderr.write(line + '\n');
const percentile = (xs: number[], p: number) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const mariadb = await startMariadb(join(dir, 'mariadb'));
const sshds: SshdServer[] = [];
let engine: RunningEngine | null = null;
try {
  sshds.push(await startSshd(join(dir, 'sshd-1'), '127.0.0.11'), await startSshd(join(dir, 'sshd-2'), '127.0.0.12'));
  const admin = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: mariadb.adminUser, password: mariadb.adminPassword });
  await admin.query('CREATE DATABASE bench');
  await admin.end();
  const url = `mysql://${encodeURIComponent(mariadb.adminUser)}:${encodeURIComponent(mariadb.adminPassword)}@${mariadb.host}:${mariadb.port}/bench`;
  engine = await startEngine(
    loadConfig({ CATALOG_URL: url, SECRETS_KEY, PORT: '0', LOG_LEVEL: 'warn', ENGINE_ROLES: 'api,worker', WORKER_CONCURRENCY: '8', WORKER_POLL_MS: '50', VAR_DIR: join(dir, 'var') }),
  );
  const ds = engine.app.get(DataSource);
  const token = (await engine.app.get(ApiTokensService).issue('bench', ['admin'], { actor: 'bench', via: 'cli' })).token;

  const repo = await buildSampleRepository(join(dir, 'repo'));
  const dispatchers: Server[] = [];
  for (const [i, sshd] of sshds.entries()) {
    const server = await ds.getRepository(Server).save(testServer(join(dir, `d${i + 1}`), `bench${i + 1}.example.net`, ['dispatcher', 'handler'], sshd));
    dispatchers.push(server);
    checkoutGroup(repo.path, server.sharedCodeRoot, 'bench', repo.revisions[1]!);
    const ips = Array.from({ length: 1 + LATENCY_ORDERS + BURST }, (_, n) => ({ serverId: server.id, ip: `127.${87 + i}.${Math.floor(n / 250)}.${(n % 250) + 1}`, kind: 'dedicated' as const, failoverGroup: null, activeServerId: null }));
    await ds.getRepository(ServerIp).save(ips, { chunk: 100 });
  }
  const cnf = join(dir, 'engine-admin.cnf');
  writeFileSync(cnf, `[client]\nhost=${mariadb.host}\nport=${mariadb.port}\nuser=${mariadb.adminUser}\npassword=${mariadb.adminPassword}\n`, { mode: 0o600 });
  await ds.getRepository(Server).save(testServer(join(dir, 'db'), 'benchdb.example.net', ['database'], null, { dbOptionsFile: cnf }));
  await ds.getRepository(SharedCodeGroup).save({
    name: 'bench', tier: 'paid', repoUrl: repo.path, revision: repo.revisions[1]!, path: join(dir, 'd1/srv/shared_codes/bench'), masterServerId: dispatchers[0]!.id,
    installLimit: 1000, installCount: 0, pinned: false, manifest: JSON.parse(JSON.stringify(SAMPLE_MANIFEST)), state: 'ready',
  });

  let n = 0;
  const order = async (): Promise<number> => {
    n++;
    const res = await fetch(`${engine!.url}/v1/installs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ orderRef: `BENCH-${n}`, customerEmail: `b${n}@example.com`, license: 'paid', sites: [{ hostname: `bench${n}-shop.example.com` }] }),
    });
    if (res.status !== 202) throw new Error(`order ${n}: HTTP ${res.status} ${await res.text()}`);
    return ((await res.json()) as { installId: number }).installId;
  };
  const settled = async (ids: number[]) => {
    for (;;) {
      const rows = await ds.getRepository(Install).find({ where: ids.map((id) => ({ id })), select: { id: true, status: true, statusReason: true } });
      const failed = rows.find((r) => r.status === 'failed');
      if (failed) throw new Error(`install ${failed.id} failed: ${failed.statusReason}`);
      if (rows.length === ids.length && rows.every((r) => r.status === 'live')) return;
      await sleep(10);
    }
  };

  // Warm-up: the first build opens the SSH connections.
  await settled([await order()]);
  const latencies: number[] = [];
  for (let i = 0; i < LATENCY_ORDERS; i++) {
    const t = performance.now();
    await settled([await order()]);
    latencies.push((performance.now() - t) / 1000);
  }
  // Where one build's time goes, step by step (the journal's durations).
  const lastJob = await ds.query(`SELECT id FROM jobs WHERE kind = 'install.build' ORDER BY id DESC LIMIT 1`);
  const stepRows: { step_name: string; duration_ms: number }[] = await ds.query('SELECT step_name, duration_ms FROM saga_steps WHERE job_id = ? ORDER BY step_index', [lastJob[0].id]);
  log(`steps of the last build (ms): ${stepRows.map((r) => `${r.step_name} ${r.duration_ms}`).join(', ')}`);
  const lastRebuild: { line: string; created_at: Date }[] = await ds.query(
    `SELECT l.line, l.created_at FROM job_logs l JOIN jobs j ON j.id = l.job_id WHERE j.kind = 'nginx.rebuild' AND j.id = (SELECT MAX(id) FROM jobs WHERE kind = 'nginx.rebuild') ORDER BY l.id`,
  );
  log(`the last nginx rebuild: ${lastRebuild.map((r) => r.line.slice(0, 400)).join(' | ')}`);
  log(`order to live: p50 ${percentile(latencies, 50).toFixed(3)} s, p99 ${percentile(latencies, 99).toFixed(3)} s over ${LATENCY_ORDERS} orders`);

  const beforeBurst: { id: number | null }[] = await ds.query('SELECT MAX(id) AS id FROM jobs');
  const t0 = performance.now();
  const burst = await Promise.all(Array.from({ length: BURST }, () => order()));
  await settled(burst);
  const burstS = (performance.now() - t0) / 1000;
  log(`burst of ${BURST} orders: all live in ${burstS.toFixed(2)} s`);
  // Coalescing: the nginx rebuilds the burst caused on each dispatcher (each one reload at most), not one per install.
  const rebuilds: { resource_key: string; n: number }[] = await ds.query(
    `SELECT resource_key, COUNT(*) AS n FROM jobs WHERE kind = 'nginx.rebuild' AND id > ? GROUP BY resource_key`,
    [beforeBurst[0]?.id ?? 0],
  );
  log(`nginx rebuilds during the burst: ${rebuilds.map((r) => `${r.resource_key} ${r.n}`).join(', ')}`);

  process.stdout.write(
    JSON.stringify({
      bench: 'install',
      order_to_live_p50_s: Number(percentile(latencies, 50).toFixed(3)),
      order_to_live_p99_s: Number(percentile(latencies, 99).toFixed(3)),
      burst_100_wall_s: Number(burstS.toFixed(2)),
      burst_100_rebuilds_max: Math.max(0, ...rebuilds.map((r) => Number(r.n))),
    }) + '\n',
  );
} finally {
  await engine?.close();
  for (const sshd of sshds) await stopSshd(sshd);
  await stopMariadb(mariadb);
  rmSync(dir, { recursive: true, force: true });
}
