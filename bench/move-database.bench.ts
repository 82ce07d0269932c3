import 'reflect-metadata';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import mysql from 'mysql2/promise';
import type { DataSource } from 'typeorm';
import { generateToken, hashToken, tokenDisplayPrefix } from '@app/auth';
import { ApiToken, createCatalogDataSource, Install, InstallServer, InstallSite, Server, SharedCodeGroup, SiteName } from '@app/catalog';
import { buildSampleRepository, SAMPLE_MANIFEST } from '@app/codebases';
import { loadConfig } from '@app/config';
import { encryptSecret } from '@app/installs';
import { startMariadb, stopMariadb } from '../test/support/mariadb.js';
import { cleanEnv, spawnApi, spawnWorker, type ApiProcess, type WorkerProcess } from '../test/support/processes-engine.js';
import { checkoutGroup, testServer } from '../test/support/server-roots.js';
import { startSshd, stopSshd } from '../test/support/sshd.js';
import type { MariadbServer, SshdServer } from '../test/support/testbed.js';

/**
 * npm run bench -- move-database
 *
 * Issue 19's `move-database` of 500 installs on two dispatchers (private
 * sshd on 127.0.125.101 and .102, half the installs on each), from one
 * private MariaDB (A, also the catalog) to another (B) holding the same
 * tenant databases and accounts (made on both, as a replica would have
 * them). The API and a worker run as separate engine processes at their
 * defaults (4 worker slots, the move's default concurrency;
 * BENCH_WORKER_CONCURRENCY and BENCH_MOVE_CONCURRENCY for diagnostic runs,
 * BENCH_WORKER_NODE_OPTIONS to preload a profiler into the worker, which
 * gets SIGUSR2 once the move ended). Setup (not measured): the code group laid out by hand on both
 * dispatchers (its release of the sample codebase), the installs written
 * into the catalog with an empty home each (the move renders their config
 * files), their databases and accounts on A and B. Measured
 * (`move_db_500_s`): `POST /v1/database-servers/move` until its report says
 * done (preconditions, 500 sagas: check, config rendered over SSH, catalog,
 * caches). Then every install is checked: its catalog row and its
 * config.php point at B. Reported beside it: the CPU seconds of the worker,
 * the API and both MariaDB servers during the move, the catalog statements
 * it took, and the 1-minute load average at its start and end.
 */
const INSTALLS = Number(process.env.BENCH_INSTALLS ?? 500);
const CONCURRENCY = process.env.BENCH_MOVE_CONCURRENCY ? Number(process.env.BENCH_MOVE_CONCURRENCY) : undefined;
const SECRETS_KEY = '0f'.repeat(32);
const NET = '127.0.125';
const dir = mkdtempSync(join(tmpdir(), 'bench-move-database-'));
chmodSync(dir, 0o755);
const log = (line: string) => process.stderr.write(line + '\n');
/** A process's CPU seconds so far (user + system), from /proc. */
const cpuSeconds = (pid: number) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
};

const optionFile = (name: string, db: MariadbServer) => {
  const path = join(dir, `${name}.cnf`);
  writeFileSync(path, `[client]\nhost=${db.host}\nport=${db.port}\nuser=${db.adminUser}\npassword=${db.adminPassword}\n`, { mode: 0o600 });
  return path;
};

let a: MariadbServer | null = null;
let b: MariadbServer | null = null;
const sshds: SshdServer[] = [];
let ds: DataSource | null = null;
let api: ApiProcess | null = null;
let worker: WorkerProcess | null = null;
try {
  [a, b] = await Promise.all([startMariadb(join(dir, 'mariadb-a')), startMariadb(join(dir, 'mariadb-b'))]);
  sshds.push(await startSshd(join(dir, 'sshd-1'), `${NET}.101`), await startSshd(join(dir, 'sshd-2'), `${NET}.102`));
  const adminA = await mysql.createConnection({ host: a.host, port: a.port, user: a.adminUser, password: a.adminPassword, multipleStatements: true });
  const adminB = await mysql.createConnection({ host: b.host, port: b.port, user: b.adminUser, password: b.adminPassword, multipleStatements: true });
  await adminA.query('CREATE DATABASE bench');
  const url = `mysql://${encodeURIComponent(a.adminUser)}:${encodeURIComponent(a.adminPassword)}@${a.host}:${a.port}/bench`;
  const config = loadConfig({ CATALOG_URL: url, SECRETS_KEY, VAR_DIR: join(dir, 'var') });
  ds = await createCatalogDataSource(config.catalog);
  await ds.initialize();
  await ds.runMigrations({ transaction: 'each' });

  const repo = await buildSampleRepository(join(dir, 'repo'));
  const revision = repo.revisions[1]!;
  const servers = ds.getRepository(Server);
  const dispatchers: Server[] = [];
  for (const [i, sshd] of sshds.entries()) {
    const row = testServer(join(dir, `d${i + 1}`), `mvb${i + 1}.example.net`, ['dispatcher', 'handler'], sshd, { privateIp: `${NET}.${103 + i}` });
    const server = await servers.save(row);
    checkoutGroup(repo.path, server.sharedCodeRoot, 'mvbench', revision);
    dispatchers.push(server);
  }
  const dbA = await servers.save(testServer(join(dir, 'dba'), 'mvdb-a.example.net', ['database'], null, { dbOptionsFile: optionFile('a', a), privateIp: '127.0.0.1' }));
  const dbB = await servers.save(testServer(join(dir, 'dbb'), 'mvdb-b.example.net', ['database'], null, { dbOptionsFile: optionFile('b', b), privateIp: '127.0.0.1' }));
  const commit = (await import('node:child_process')).execFileSync('git', ['-C', repo.path, 'rev-parse', `${revision}^{commit}`], { encoding: 'utf8' }).trim();
  const group = await ds.getRepository(SharedCodeGroup).save({
    name: 'mvbench', tier: 'free', repoUrl: repo.path, revision: commit, path: join(dispatchers[0]!.sharedCodeRoot, 'mvbench'), masterServerId: dispatchers[0]!.id,
    installLimit: 1_000_000, installCount: INSTALLS, pinned: false, manifest: JSON.parse(JSON.stringify(SAMPLE_MANIFEST)), state: 'ready',
  } as unknown as SharedCodeGroup);

  // Setup: the installs in the catalog, an empty home each (its cache directory), their databases and accounts on A and B.
  let t = performance.now();
  const password = (n: number) => `pw-${n}-${'x'.repeat(16)}`;
  for (let start = 0; start < INSTALLS; start += 250) {
    const chunk = Array.from({ length: Math.min(250, INSTALLS - start) }, (_, k) => start + k + 1);
    await ds.transaction(async (m) => {
      await m.insert(Install, chunk.map((n) => ({
        orderRef: `MVB-${n}`, customerEmail: `mvb${n}@example.com`, license: 'free', fsName: `mvb${n}`, dbName: `mvb_${n}`, dbUser: `mvb_${n}`, dbPasswordEnc: encryptSecret(config.secretsKey, password(n)),
        dbServerId: dbA.id, sharedCodeGroupId: group.id, masterServerId: dispatchers[n % 2]!.id, status: 'live', statusReason: null, codeRevision: commit,
      })) as never);
      const saved = await m.getRepository(Install).createQueryBuilder('i').where('i.fsName IN (:...names)', { names: chunk.map((n) => `mvb${n}`) }).getMany();
      await m.insert(InstallServer, saved.map((i) => ({ installId: i.id, serverId: i.masterServerId, role: 'master', weight: 1 })) as never);
      await m.insert(InstallSite, saved.map((i) => ({ installId: i.id, hostname: `${i.fsName}.example.org` })) as never);
      const sites = await m.getRepository(InstallSite).createQueryBuilder('s').where('s.installId IN (:...ids)', { ids: saved.map((i) => i.id) }).getMany();
      await m.insert(SiteName, sites.map((s) => ({ installId: s.installId, installSiteId: s.id, name: s.hostname })) as never);
    });
    const sql = chunk
      .map((n) => {
        const host = dispatchers[n % 2]!.privateIp!;
        const accounts = [`'mvb_${n}'@'${host}'`, `'mvb_${n}'@'127.0.0.1'`];
        return [`CREATE DATABASE mvb_${n};`, `CREATE TABLE mvb_${n}.settings (name varchar(64) PRIMARY KEY, value text);`, ...accounts.map((acc) => `CREATE USER ${acc} IDENTIFIED BY '${password(n)}'; GRANT ALL PRIVILEGES ON \`mvb\\_${n}\`.* TO ${acc};`)].join('\n');
      })
      .join('\n');
    await Promise.all([adminA.query(sql), adminB.query(sql)]);
  }
  for (let n = 1; n <= INSTALLS; n++) mkdirSync(join(dispatchers[n % 2]!.homeRoot, `mvb${n}`, 'heavymetal/cache'), { recursive: true });
  await Promise.all([adminA.end(), adminB.end()]);
  log(`${INSTALLS} installs seeded (catalog, homes, databases on A and B) in ${((performance.now() - t) / 1000).toFixed(1)} s`);

  const token = generateToken();
  await ds.getRepository(ApiToken).insert({ name: 'bench', tokenHash: hashToken(token), prefix: tokenDisplayPrefix(token), scopes: ['admin'], lastUsedAt: null, revokedAt: null } as never);
  const env = cleanEnv({ CATALOG_URL: url, SECRETS_KEY, LOG_LEVEL: 'warn', VAR_DIR: join(dir, 'var'), ORDERS_PER_MINUTE: '0', ALLOW_LOCAL_TRANSPORT: 'true' });
  [api, worker] = await Promise.all([spawnApi({ ...env, PORT: '0' }), spawnWorker({ ...env, LOG_LEVEL: 'info', ...(process.env.BENCH_WORKER_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_WORKER_NODE_OPTIONS } : {}), ...(process.env.BENCH_WORKER_CONCURRENCY ? { WORKER_CONCURRENCY: process.env.BENCH_WORKER_CONCURRENCY } : {}) }, 120_000)]);
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const call = async (method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> => {
    const res = await fetch(`${api!.url}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };
  await sleep(1_000);

  // Measured: the move, from the request to its report saying done.
  const loadStart = loadavg()[0]!;
  const cpuOf = () => ({ worker: cpuSeconds(worker!.child.pid!), api: cpuSeconds(api!.child.pid!), catalogAndA: cpuSeconds(a!.pid), b: cpuSeconds(b!.pid) });
  const cpuStart = cpuOf();
  const questions = async () => Number(((await ds!.query(`SHOW GLOBAL STATUS LIKE 'Questions'`)) as { Value: string }[])[0]!.Value);
  const questionsStart = await questions();
  t = performance.now();
  const started = await call('POST', '/v1/database-servers/move', { from: dbA.id, to: dbB.id, ...(CONCURRENCY ? { concurrency: CONCURRENCY } : {}) });
  if (started.status !== 202) throw new Error(`POST /v1/database-servers/move: HTTP ${started.status} ${JSON.stringify(started.body).slice(0, 2000)}`);
  const accepted = (performance.now() - t) / 1000;
  // Polled by the list (its counts), not the full report: 500 items read ten times a second would be the bench's own load.
  for (;;) {
    const moves: { id: number; state: string }[] = (await call('GET', '/v1/database-servers/moves')).body;
    const state = moves.find((m) => m.id === started.body.moveId)?.state;
    if (state === 'done' || state === 'failed') break;
    await sleep(200);
  }
  const moveS = (performance.now() - t) / 1000;
  const report = (await call('GET', `/v1/database-servers/moves/${started.body.moveId}`)).body;
  const loadEnd = loadavg()[0]!;
  const cpuEnd = cpuOf();
  const catalogQueries = (await questions()) - questionsStart;
  log(`catalog statements during the move: ${catalogQueries} (${(catalogQueries / INSTALLS).toFixed(1)} per install, the report polls included)`);
  if (process.env.BENCH_WORKER_NODE_OPTIONS) {
    worker!.child.kill('SIGUSR2');
    await sleep(3_000);
  }
  log(`CPU seconds during the move: ${Object.entries(cpuEnd).map(([k, v]) => `${k} ${(v - cpuStart[k as keyof typeof cpuStart]).toFixed(1)}`).join(', ')}`);
  if (report.state !== 'done') throw new Error(`the move ${report.state}: ${report.error} ${JSON.stringify(report.items.filter((i: { error: string | null }) => i.error).slice(0, 3))}`);
  log(`moved ${INSTALLS} installs in ${moveS.toFixed(2)} s (preconditions and queueing ${accepted.toFixed(2)} s), concurrency ${report.concurrency}`);

  // Where the time went: the children's waits (made and held by the parent: none, unless one was taken back) and runs, each saga step's mean.
  const children: { wait: number; run: number }[] = await ds.query(
    'SELECT TIMESTAMPDIFF(MICROSECOND, created_at, started_at) / 1000 AS wait, TIMESTAMPDIFF(MICROSECOND, started_at, finished_at) / 1000 AS run FROM jobs WHERE parent_id = ?',
    [report.jobId],
  );
  const mean = (xs: number[]) => (xs.length ? Math.round(xs.reduce((x, y) => x + y, 0) / xs.length) : null);
  const steps: { step: string; ms: number }[] = await ds.query('SELECT s.step_name AS step, AVG(s.duration_ms) AS ms FROM saga_steps s JOIN jobs j ON j.id = s.job_id WHERE j.parent_id = ? GROUP BY s.step_name', [report.jobId]);
  log(`children: ${children.length}, mean queue wait ${mean(children.map((c) => Number(c.wait)))} ms, mean run ${mean(children.map((c) => Number(c.run)))} ms; saga steps (mean ms): ${steps.map((x) => `${x.step} ${Math.round(Number(x.ms))}`).join(', ')}`);

  // Checked: every install's row and config file point at B.
  const onB = await ds.getRepository(Install).countBy({ dbServerId: dbB.id });
  if (onB !== INSTALLS) throw new Error(`${onB} of ${INSTALLS} installs on B in the catalog`);
  for (let n = 1; n <= INSTALLS; n++) {
    const config = readFileSync(join(dispatchers[n % 2]!.homeRoot, `mvb${n}`, 'heavymetal/config.php'), 'utf8');
    if (!config.includes(`port=${b.port};dbname=mvb_${n}`)) throw new Error(`mvb${n}'s config.php does not point at B`);
  }
  process.stdout.write(
    JSON.stringify({ bench: 'move-database', installs: INSTALLS, dispatchers: 2, concurrency: report.concurrency, worker_concurrency: Number(process.env.BENCH_WORKER_CONCURRENCY ?? 4), move_db_500_s: Number(moveS.toFixed(3)), preconditions_and_queue_s: Number(accepted.toFixed(3)), load_1m_start: Number(loadStart.toFixed(2)), load_1m_end: Number(loadEnd.toFixed(2)), target_s: 20 }) + '\n',
  );
} finally {
  if (worker) {
    worker.child.kill('SIGTERM');
    await worker.exited;
  }
  if (api) {
    api.child.kill('SIGTERM');
    await api.exited;
  }
  await ds?.destroy().catch(() => undefined);
  for (const sshd of sshds) await stopSshd(sshd).catch(() => undefined);
  for (const db of [a, b]) if (db) await stopMariadb(db).catch(() => undefined);
  // A server still writing as it stops must not hide the bench's own failure behind ENOTEMPTY.
  if (!process.env.KEEP_BENCH_DIRS) rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
}
