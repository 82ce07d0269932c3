import 'reflect-metadata';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
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
import { plainReload as plainNginxReload, quiesce as quiesceNginx } from './nginx-reload.js';

/**
 * npm run bench -- nginx
 *
 * One dispatcher reached over SSH (private sshd on its own loopback
 * address), a private nginx whose http block includes the dispatcher's
 * `current/*.conf`, a private MariaDB as catalog: 10,000 installs with one
 * site each, on 50 loopback IPs. Measured in the same run, on the same
 * config: the render, the first apply, the apply of a one-install change,
 * and nginx's own `nginx -t` and reload (`nginx -s reload`, then waiting
 * by /proc for the master's new workers, independently of the engine's
 * code); then again with certificates on 1,000 of the sites. The
 * one-install change is applied by the bench's engine (warm: its render
 * memo and staged-generation memory from the previous apply) and, after
 * those rounds, by a fresh engine process each time (cold: nothing in
 * memory; its boot is not counted). Each measured operation starts once the
 * previous configuration's workers have exited. Medians, and the range.
 */
const INSTALLS = Number(process.env.BENCH_INSTALLS ?? 10_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 6);
const COLD_ROUNDS = Number(process.env.BENCH_COLD_ROUNDS ?? 3);
const WARMUP_RELOADS = 2;
const CERTS = Math.min(INSTALLS, Number(process.env.BENCH_CERTS ?? 1_000));
const SECRETS_KEY = '0f'.repeat(32);
/** Set in the child process that applies from cold: what it needs to boot an engine on the bench's catalog. */
const COLD_APPLY = process.env.BENCH_NGINX_COLD_APPLY;
const COLD_RESULT = 'cold-apply-result ';
const log = (line: string) => process.stderr.write(line + '\n');
const seconds = (ms: number) => Number((ms / 1000).toFixed(3));
const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
const range = (xs: number[]) => [seconds(Math.min(...xs)), seconds(Math.max(...xs))];

interface ColdApplySpec {
  catalogUrl: string;
  varDir: string;
  serverId: number;
}
interface ColdApplyResult {
  ms: number;
  nginx: ApplyReport['nginx'];
  quarantined: number;
  filesWritten: number;
  timings: ApplyReport['timings'];
}

/** In the child: boots an engine like the bench's, applies the dispatcher once, prints the time. */
async function coldApply(spec: ColdApplySpec): Promise<void> {
  const engine = await startEngine(
    loadConfig({ CATALOG_URL: spec.catalogUrl, SECRETS_KEY, PORT: '0', LOG_LEVEL: 'warn', ENGINE_ROLES: 'api', VAR_DIR: spec.varDir }),
  );
  try {
    const server = await engine.app.get(DataSource).getRepository(Server).findOneByOrFail({ id: spec.serverId });
    const t = performance.now();
    const report = await engine.app.get(NginxPipeline).apply(server);
    const result: ColdApplyResult = {
      ms: performance.now() - t,
      nginx: report.nginx,
      quarantined: report.quarantined.length,
      filesWritten: report.filesWritten,
      timings: report.timings,
    };
    process.stdout.write(COLD_RESULT + JSON.stringify(result) + '\n');
  } finally {
    await engine.close();
  }
}

/** Runs coldApply in a new Node process (this file, compiled) and returns what it measured. */
function coldApplyInChild(spec: ColdApplySpec): Promise<ColdApplyResult> {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url)], {
    env: { ...process.env, BENCH_NGINX_COLD_APPLY: JSON.stringify(spec) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      const line = output.split('\n').find((l) => l.startsWith(COLD_RESULT));
      if (code !== 0 || !line) reject(new Error(`the cold apply exited with ${code ?? signal}:\n${output}`));
      else resolve(JSON.parse(line.slice(COLD_RESULT.length)) as ColdApplyResult);
    });
  });
}

async function bench(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-nginx-'));
  chmodSync(dir, 0o755);
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
    const varDir = join(dir, 'var');
    engine = await startEngine(loadConfig({ CATALOG_URL: url, SECRETS_KEY, PORT: '0', LOG_LEVEL: 'warn', ENGINE_ROLES: 'api', VAR_DIR: varDir }));
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
      const shops = [...files.keys()].filter((n) => n.startsWith('shops/') || n.startsWith('hosts/')).length;
      if (shops !== INSTALLS || refused.length > 0) throw new Error(`rendered ${shops} install files, refused ${refused.length}`);
    }
    const renderMs = median(renders);
    log(`render of ${INSTALLS} installs: median ${renderMs.toFixed(1)} ms (${renders.map((r) => r.toFixed(0)).join(', ')})`);

    const quiesce = () => quiesceNginx(nginx!);
    const plainReload = () => plainNginxReload(nginx!);

    /** nginx's own test of the live config, and its own reload, on the same files. */
    const nginxOwn = async () => {
      await quiesce();
      const p = nginx!.prefix;
      t = performance.now();
      execFileSync('nginx', ['-c', nginx!.confPath, '-p', `${p}/`, '-e', join(p, 'logs/error.log'), '-t', '-q'], { stdio: 'ignore' });
      const testMs = performance.now() - t;
      return { testMs, reloadMs: await plainReload() };
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
      // From cold: a new engine process for each apply (no render memo, no memory of what it staged).
      const colds: ColdApplyResult[] = [];
      for (let round = 0; round < COLD_ROUNDS; round++) {
        await changeOne(1 + ROUNDS + round);
        await quiesce();
        const cold = await coldApplyInChild({ catalogUrl: url, varDir, serverId: server.id });
        if (cold.nginx !== 'reloaded' || cold.quarantined > 0) throw new Error(`${label}: cold apply: ${cold.nginx}, quarantined ${cold.quarantined}`);
        colds.push(cold);
        log(`${label}: one-install change applied from cold in ${seconds(cold.ms)} s (${JSON.stringify(cold.timings)}), ${cold.filesWritten} file(s) written`);
      }
      const answer = await fetchSite('127.0.97.1', 'shop0.bench.example.org', '/hello.txt');
      if (answer.status !== 200) throw new Error(`shop0 answered ${answer.status}`);
      return {
        firstMs,
        own: { testMs: median(owns.map((o) => o.testMs)), reloadMs: median(owns.map((o) => o.reloadMs)) },
        ownRange: { test: range(owns.map((o) => o.testMs)), reload: range(owns.map((o) => o.reloadMs)) },
        oneMs: median(ones.map((o) => o.ms)),
        oneRange: range(ones.map((o) => o.ms)),
        coldMs: colds.length > 0 ? median(colds.map((c) => c.ms)) : null,
        coldRange: colds.length > 0 ? range(colds.map((c) => c.ms)) : null,
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
        rounds: ROUNDS,
        cold_rounds: COLD_ROUNDS,
        nginx_test_10k_s: seconds(plain.own.testMs),
        nginx_test_10k_s_range: plain.ownRange.test,
        nginx_reload_10k_s: seconds(plain.own.reloadMs),
        nginx_reload_10k_s_range: plain.ownRange.reload,
        apply_10k_s: seconds(plain.oneMs),
        apply_10k_s_range: plain.oneRange,
        apply_cold_10k_s: plain.coldMs === null ? null : seconds(plain.coldMs),
        apply_cold_10k_s_range: plain.coldRange,
        overhead_ratio: ratio(plain),
        overhead_ratio_cold: plain.coldMs === null ? null : Number((plain.coldMs / (plain.own.testMs + plain.own.reloadMs)).toFixed(3)),
        overhead_ratio_in_apply: Number(plain.inApply.toFixed(3)),
        first_apply_10k_s: seconds(plain.firstMs),
        certs_1k_nginx_test_10k_s: seconds(certs.own.testMs),
        certs_1k_nginx_test_10k_s_range: certs.ownRange.test,
        certs_1k_nginx_reload_10k_s: seconds(certs.own.reloadMs),
        certs_1k_nginx_reload_10k_s_range: certs.ownRange.reload,
        certs_1k_apply_10k_s: seconds(certs.oneMs),
        certs_1k_apply_10k_s_range: certs.oneRange,
        certs_1k_apply_cold_10k_s: certs.coldMs === null ? null : seconds(certs.coldMs),
        certs_1k_apply_cold_10k_s_range: certs.coldRange,
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
}

if (COLD_APPLY) await coldApply(JSON.parse(COLD_APPLY) as ColdApplySpec);
else await bench();
