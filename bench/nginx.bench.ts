import 'reflect-metadata';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import mysql from 'mysql2/promise';
import { DataSource, In } from 'typeorm';
import { Install, InstallSite, Server } from '@app/catalog';
import { loadConfig } from '@app/config';
import { DispatcherInputLoader, NginxPipeline, renderEach, type ApplyReport } from '@app/webserver';
import { startEngine, type RunningEngine } from '../apps/engine/src/start-engine.js';
import { startMariadb, stopMariadb } from '../test/support/mariadb.js';
import { startNginx, stopNginx } from '../test/support/nginx.js';
import { testServer } from '../test/support/server-roots.js';
import { startSshd, stopSshd } from '../test/support/sshd.js';
import type { NginxServer, SshdServer } from '../test/support/testbed.js';
import { codeGroupFor, fetchSite, makeCert, seedWebInstalls, writeHome } from '../test/support/web-installs.js';

/**
 * npm run bench -- nginx
 *
 * One dispatcher reached over SSH (private sshd on its own loopback
 * address), a private nginx whose http block includes the dispatcher's
 * `current/*.conf`, a private MariaDB as catalog: 10,000 installs with one
 * site each, on 50 loopback IPs. Measured in the same run, on the same
 * config: the render, the first apply, the apply of a one-install change,
 * and nginx's own `nginx -t` and reload; then again with certificates on
 * 1,000 of the sites. Each measured operation (nginx's own or an apply)
 * starts once the previous configuration's workers have exited.
 */
const INSTALLS = Number(process.env.BENCH_INSTALLS ?? 10_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 6);
const WARMUP_RELOADS = 2;
const CERTS = Math.min(INSTALLS, Number(process.env.BENCH_CERTS ?? 1_000));
const SECRETS_KEY = '0f'.repeat(32);
const dir = mkdtempSync(join(tmpdir(), 'bench-nginx-'));
chmodSync(dir, 0o755);
const log = (line: string) => process.stderr.write(line + '\n');
const seconds = (ms: number) => Number((ms / 1000).toFixed(3));
const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

const mariadb = await startMariadb(join(dir, 'mariadb'));
let sshd: SshdServer | null = null;
let nginx: NginxServer | null = null;
let engine: RunningEngine | null = null;
try {
  sshd = await startSshd(join(dir, 'sshd'), '127.0.0.13');
  const admin = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: mariadb.adminUser, password: mariadb.adminPassword });
  await admin.query('CREATE DATABASE bench');
  await admin.end();
  const url = `mysql://${encodeURIComponent(mariadb.adminUser)}:${encodeURIComponent(mariadb.adminPassword)}@${mariadb.host}:${mariadb.port}/bench`;
  engine = await startEngine(loadConfig({ CATALOG_URL: url, SECRETS_KEY, PORT: '0', LOG_LEVEL: 'warn', ENGINE_ROLES: 'api', VAR_DIR: join(dir, 'var') }));
  const ds = engine.app.get(DataSource);
  const pipeline = engine.app.get(NginxPipeline);

  const row = testServer(join(dir, 'd1'), 'benchweb.example.net', ['dispatcher', 'handler'], sshd, { privateIp: '127.0.97.250' });
  nginx = await startNginx(join(dir, 'nginx'), { include: [join(row.nginxConfDir, 'current/*.conf')] });
  const server = await ds.getRepository(Server).save({ ...row, nginxPidFile: join(nginx.prefix, 'nginx.pid') });
  const group = await codeGroupFor(ds, server);

  let t = performance.now();
  const specs = Array.from({ length: INSTALLS }, (_, i) => ({ fsName: `shop${i}`, hostname: `shop${i}.bench.example.org`, ip: `127.0.97.${1 + (i % 50)}` }));
  const installs = await seedWebInstalls(ds, server, group, specs, { homes: false });
  writeHome(server, 'shop0');
  log(`seeded ${installs.length} installs in ${seconds(performance.now() - t)} s`);

  // Render: the pure function over the catalog's state, loaded once.
  const input = await engine.app.get(DispatcherInputLoader).load(server);
  const renders: number[] = [];
  for (let i = 0; i < 7; i++) {
    t = performance.now();
    const { files, refused } = renderEach(input);
    renders.push(performance.now() - t);
    const shops = [...files.keys()].filter((n) => n.startsWith('shops/')).length;
    if (shops !== INSTALLS || refused.length > 0) throw new Error(`rendered ${shops} install files, refused ${refused.length}`);
  }
  const renderMs = median(renders);
  log(`render of ${INSTALLS} installs: median ${renderMs.toFixed(1)} ms (${renders.map((r) => r.toFixed(0)).join(', ')})`);

  /**
   * Waits until the workers of the previous configuration have exited (and
   * given their memory back) and the machine has settled: each measured
   * operation, nginx's own or the engine's, starts from the same state.
   */
  const quiesce = async () => {
    for (let i = 0; i < 1200; i++) {
      const titles = execFileSync('ps', ['-o', 'args=', '--ppid', String(nginx!.pid)]).toString();
      if (!titles.includes('shutting down')) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 2_000));
  };

  /** nginx's own test of the live config, and its own reload (HUP until new workers serve), on the same files. */
  const nginxOwn = async () => {
    await quiesce();
    const p = nginx!.prefix;
    t = performance.now();
    execFileSync('nginx', ['-c', nginx!.confPath, '-p', `${p}/`, '-e', join(p, 'logs/error.log'), '-t', '-q'], { stdio: 'ignore' });
    const testMs = performance.now() - t;
    t = performance.now();
    if ((await pipeline.files(server).reload(600)) !== 'reloaded') throw new Error('nginx did not reload');
    return { testMs, reloadMs: performance.now() - t };
  };
  const changeOne = async (n: number) => {
    const site = await ds.getRepository(InstallSite).findOneByOrFail({ installId: installs[n]!.id });
    await ds.getRepository(InstallSite).update({ id: site.id }, { secureHostname: site.secureHostname ? null : `secure${n}.bench.example.org` });
  };
  /**
   * The first apply; then nginx's own reload twice, unmeasured (a master's
   * first reloads are faster than the later ones: its heap is fresh, later
   * ones write into memory it shares with its workers, copy-on-write);
   * then rounds of nginx's own test + reload and of a one-install change
   * applied, in alternating order (own first, then apply first) so that
   * neither always runs after the other; medians.
   */
  const measure = async (label: string) => {
    t = performance.now();
    const first = await pipeline.apply(server);
    const firstMs = performance.now() - t;
    check(first, label);
    log(`${label}: first apply ${seconds(firstMs)} s (${JSON.stringify(first.timings)}), ${first.filesWritten} files written`);
    for (let i = 0; i < WARMUP_RELOADS; i++) {
      const own = await nginxOwn();
      log(`${label}: warm-up: nginx -t ${seconds(own.testMs)} s, reload ${seconds(own.reloadMs)} s (not counted)`);
    }
    const owns: { testMs: number; reloadMs: number }[] = [];
    const ones: { ms: number; report: ApplyReport }[] = [];
    const own = async () => {
      const o = await nginxOwn();
      owns.push(o);
      log(`${label}: nginx -t ${seconds(o.testMs)} s, reload ${seconds(o.reloadMs)} s`);
    };
    const one = async (round: number) => {
      await changeOne(1 + round);
      await quiesce();
      t = performance.now();
      const report = await pipeline.apply(server);
      ones.push({ ms: performance.now() - t, report });
      check(report, label);
      log(`${label}: one-install change applied in ${seconds(ones.at(-1)!.ms)} s (${JSON.stringify(report.timings)}), ${report.filesWritten} file(s) written`);
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
    const answer = await fetchSite('127.0.97.1', 'shop0.bench.example.org', '/hello.txt');
    if (answer.status !== 200) throw new Error(`shop0 answered ${answer.status}`);
    return {
      firstMs,
      own: { testMs: median(owns.map((o) => o.testMs)), reloadMs: median(owns.map((o) => o.reloadMs)) },
      oneMs: median(ones.map((o) => o.ms)),
      // The engine's share inside each apply: its whole time over its own nginx -t and swap + reload phases.
      inApply: median(ones.map((o) => o.ms / (o.report.timings.testMs + o.report.timings.reloadMs))),
      filesWritten: Math.max(...ones.map((o) => o.report.filesWritten)),
    };
  };
  const check = (report: ApplyReport, label: string) => {
    if (report.nginx !== 'reloaded' || report.quarantined.length > 0) throw new Error(`${label}: ${report.nginx}, quarantined ${report.quarantined.length}`);
  };

  const plain = await measure(`${INSTALLS} plain`);

  const cert = makeCert(join(dir, 'certs'), 'bench', 'bench.example.org');
  await ds.getRepository(InstallSite).update({ installId: In(installs.slice(0, CERTS).map((i) => i.id)) }, { sslPemPath: cert.pem, sslKeyPath: cert.key });
  const certs = await measure(`${INSTALLS} with ${CERTS} certificates`);
  const served = await ds.getRepository(Install).count();

  const ratio = (m: typeof plain) => Number((m.oneMs / (m.own.testMs + m.own.reloadMs)).toFixed(3));
  process.stdout.write(
    JSON.stringify({
      bench: 'nginx',
      installs: served,
      render_10k_ms: Number(renderMs.toFixed(1)),
      files_written_one_change: plain.filesWritten,
      nginx_test_10k_s: seconds(plain.own.testMs),
      nginx_reload_10k_s: seconds(plain.own.reloadMs),
      apply_10k_s: seconds(plain.oneMs),
      overhead_ratio: ratio(plain),
      overhead_ratio_in_apply: Number(plain.inApply.toFixed(3)),
      first_apply_10k_s: seconds(plain.firstMs),
      certs_1k_nginx_test_10k_s: seconds(certs.own.testMs),
      certs_1k_nginx_reload_10k_s: seconds(certs.own.reloadMs),
      certs_1k_apply_10k_s: seconds(certs.oneMs),
      certs_1k_files_written_one_change: certs.filesWritten,
      certs_1k_overhead_ratio: ratio(certs),
      certs_1k_overhead_ratio_in_apply: Number(certs.inApply.toFixed(3)),
    }) + '\n',
  );
} catch (error) {
  // What nginx said, before its directory goes.
  if (nginx) log(execFileSync('tail', ['-n', '20', join(nginx.prefix, 'logs/error.log')]).toString());
  throw error;
} finally {
  await engine?.close();
  if (nginx) await stopNginx(nginx);
  if (sshd) await stopSshd(sshd);
  await stopMariadb(mariadb);
  rmSync(dir, { recursive: true, force: true });
}
