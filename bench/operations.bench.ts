import 'reflect-metadata';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { DataSource, In } from 'typeorm';
import { generateToken, hashToken, tokenDisplayPrefix } from '@app/auth';
import { ApiToken, createCatalogDataSource, Install, InstallSite, Job, SagaStep, Server, ServerIp, SharedCodeGroup } from '@app/catalog';
import { buildSampleRepository, SAMPLE_MANIFEST } from '@app/codebases';
import { loadConfig } from '@app/config';
import { CertCorpus } from '../test/support/cert-corpus.js';
import { startDispatcherWeb, stopDispatcherWeb, type DispatcherWeb } from '../test/support/dispatcher-web.js';
import { startMariadb, stopMariadb } from '../test/support/mariadb.js';
import { cleanEnv, runCli, spawnApi, spawnWorker, type ApiProcess, type WorkerProcess } from '../test/support/processes-engine.js';
import { checkoutGroup, testServer } from '../test/support/server-roots.js';
import { startSshd, stopSshd } from '../test/support/sshd.js';
import type { SshdServer } from '../test/support/testbed.js';
import { fetchSite } from '../test/support/web-installs.js';
import { seedBaseInstalls } from './base-installs.js';
import { plainReload, quiesce } from './nginx-reload.js';
import { answersFromPhp, opensslLeaf, servedLeaf, sha256OfPem, untilAll } from './served-probes.js';

/**
 * npm run bench -- operations
 *
 * Issue 17's support operations timed as a support person sees them, with
 * production's settings: the API and a worker in separate engine processes
 * at the default poll interval and concurrency, two SSH dispatchers each
 * with a running nginx and php-fpm already serving 2,000 live installs
 * (`BENCH_BASE_INSTALLS`, loaded by the CLI's rebuild-nginx first), a
 * private MariaDB as catalog and tenant database server, the sample
 * codebase; DNS unmanaged (no DNS_API_URL). The operations' installs are
 * real orders through the API, built live on both dispatchers.
 * - change hostname (`PATCH /v1/installs/:id/sites/:siteId`): from the call
 *   until the new name answers its front page from PHP (the page prints the
 *   hostname its config names) through both dispatchers;
 * - change SSL (`PUT .../certificate`, a leaf made with openssl): from the
 *   call until a TLS handshake with the site's name as SNI gets the new
 *   leaf from both dispatchers (confirmed after with `openssl s_client`);
 * each one warm-up run, then `BENCH_RUNS` (10) one at a time, each after
 * the previous operation's jobs ended; p50 and range.
 * - remove install (`DELETE /v1/installs/:id`): from the call until the
 *   install is `removed`; its verification sweep's leftovers read from
 *   `GET /v1/installs/:id/removal` (must be 0). `BENCH_REMOVALS` (3) fresh
 *   installs, then the two above (their names changed, the second with
 *   its certificate files on both dispatchers).
 * Where the time goes (stderr): each job's pickup, its steps, and the
 * nginx rebuilds' applies (nginx -t and reload of the 2,000 installs).
 * The run's baseline (the machine is shared: load moves every figure):
 * nginx's own `nginx -s reload` of the 2,000 installs, alone and on both
 * dispatchers at once, three times each before the operations; the
 * operations' p50 over the latter is printed beside it.
 */
const BASE = Number(process.env.BENCH_BASE_INSTALLS ?? 2000);
const RUNS = Number(process.env.BENCH_RUNS ?? 10);
const REMOVALS = Number(process.env.BENCH_REMOVALS ?? 3);
/** Base installs share these IPs per dispatcher, as free installs do (nginx binds one socket per address). */
const SHARED_IPS = 10;
const SECRETS_KEY = '0f'.repeat(32);
/** This bench's loopback: sshd on 127.0.0.51/52, dispatcher d<n>'s private IP 127.0.14<n>.1, its dedicated IPs 127.0.14<2+n>.x, its shared ones 127.0.14<4+n>.x. */
const SSHD_HOSTS = ['127.0.0.51', '127.0.0.52'];
const loadStart = loadavg();
const dir = mkdtempSync(join(tmpdir(), 'bench-operations-'));
chmodSync(dir, 0o755);
const log = (line: string) => process.stderr.write(line + '\n');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round = (x: number, digits = 3) => Number(x.toFixed(digits));
const range = (xs: number[]) => [round(Math.min(...xs)), round(Math.max(...xs))];
const seconds = (ms: number[]) => ms.map((m) => m / 1000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const mariadb = await startMariadb(join(dir, 'mariadb'));
const sshds: SshdServer[] = [];
const webs: DispatcherWeb[] = [];
let ds: DataSource | null = null;
let api: ApiProcess | null = null;
let worker: WorkerProcess | null = null;
try {
  for (const [i, host] of SSHD_HOSTS.entries()) sshds.push(await startSshd(join(dir, `sshd-${i + 1}`), host));
  const admin = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: mariadb.adminUser, password: mariadb.adminPassword });
  await admin.query('CREATE DATABASE bench');
  await admin.end();
  const url = `mysql://${encodeURIComponent(mariadb.adminUser)}:${encodeURIComponent(mariadb.adminPassword)}@${mariadb.host}:${mariadb.port}/bench`;
  const config = loadConfig({ CATALOG_URL: url, SECRETS_KEY, VAR_DIR: join(dir, 'var') });
  ds = await createCatalogDataSource(config.catalog);
  await ds.initialize();
  await ds.runMigrations({ transaction: 'each' });
  const db = ds;

  const repo = await buildSampleRepository(join(dir, 'repo'));
  // One certificates root on both (one layout: a site's certificate has one path on every dispatcher); homes and code per dispatcher.
  const certsRoot = join(dir, 'common/srv/certs');
  mkdirSync(certsRoot, { recursive: true });
  const dispatchers: Server[] = [];
  const installCount = REMOVALS + 2;
  for (const [i, sshd] of sshds.entries()) {
    const privateIp = `127.0.${141 + i}.1`;
    const row = testServer(join(dir, `d${i + 1}`), `ops${i + 1}.example.net`, ['dispatcher', 'handler'], sshd, { privateIp, certsRoot });
    const web = await startDispatcherWeb(join(dir, `web-${i + 1}`), row.nginxConfDir, privateIp);
    webs.push(web);
    const server = await db.getRepository(Server).save({ ...row, nginxPidFile: web.pidFile });
    dispatchers.push(server);
    checkoutGroup(repo.path, server.sharedCodeRoot, 'bench', repo.revisions[1]!);
    const dedicated = Array.from({ length: installCount + 5 }, (_, n) => ({ serverId: server.id, ip: `127.0.${143 + i}.${n + 1}`, kind: 'dedicated' as const, failoverGroup: null, activeServerId: null }));
    const shared = Array.from({ length: SHARED_IPS }, (_, n) => ({ serverId: server.id, ip: `127.0.${145 + i}.${n + 1}`, kind: 'shared' as const, failoverGroup: null, activeServerId: null }));
    await db.getRepository(ServerIp).save([...dedicated, ...shared], { chunk: 100 });
  }
  const cnf = join(dir, 'engine-admin.cnf');
  writeFileSync(cnf, `[client]\nhost=${mariadb.host}\nport=${mariadb.port}\nuser=${mariadb.adminUser}\npassword=${mariadb.adminPassword}\n`, { mode: 0o600 });
  await db.getRepository(Server).save(testServer(join(dir, 'db'), 'opsdb.example.net', ['database'], null, { dbOptionsFile: cnf, privateIp: '127.0.0.1' }));
  const group = await db.getRepository(SharedCodeGroup).save({
    name: 'bench', tier: 'paid', repoUrl: repo.path, revision: repo.revisions[1]!, path: join(dispatchers[0]!.sharedCodeRoot, 'bench'), masterServerId: dispatchers[0]!.id,
    installLimit: BASE + installCount, installCount: BASE, pinned: false, manifest: JSON.parse(JSON.stringify(SAMPLE_MANIFEST)), state: 'ready',
  });
  await seedBaseInstalls(db, dispatchers, group, BASE);
  log(`${BASE} live installs on both dispatchers`);

  const token = generateToken();
  await db.getRepository(ApiToken).insert({ name: 'bench', tokenHash: hashToken(token), prefix: tokenDisplayPrefix(token), scopes: ['orders', 'support'], lastUsedAt: null, revokedAt: null } as never);
  // Production's settings: default poll interval and concurrency (nothing set), api and worker apart.
  const env = cleanEnv({ CATALOG_URL: url, SECRETS_KEY, LOG_LEVEL: 'warn', VAR_DIR: join(dir, 'var'), ORDERS_PER_MINUTE: '0' });
  // The worker announces its start at info level.
  [api, worker] = await Promise.all([spawnApi({ ...env, PORT: '0' }), spawnWorker({ ...env, LOG_LEVEL: 'info' }, 120_000)]);
  const apiUrl = api.url;

  // Both dispatchers' nginx carry the 2,000 installs before anything is measured.
  let t = performance.now();
  const rebuilt = await runCli(['rebuild-nginx', '--timeout', '900'], process.cwd(), env);
  if (rebuilt.code !== 0) throw new Error(`rebuild-nginx failed: ${rebuilt.stderr}${rebuilt.stdout}`);
  log(`first rebuild of ${BASE} installs on both dispatchers: ${((performance.now() - t) / 1000).toFixed(2)} s`);

  // The baseline of this run (the machine is shared: its load moves every figure): nginx's own reload of these 2,000 installs,
  // on one dispatcher alone and on both at once (as every operation makes them), three times each, after the previous workers left.
  const reloadOne: number[] = [];
  const reloadBoth: number[] = [];
  for (let i = 0; i < 3; i++) {
    await Promise.all(webs.map((w) => quiesce(w.nginx)));
    reloadOne.push(await plainReload(webs[0]!.nginx));
    await Promise.all(webs.map((w) => quiesce(w.nginx)));
    reloadBoth.push(Math.max(...(await Promise.all(webs.map((w) => plainReload(w.nginx))))));
  }
  await Promise.all(webs.map((w) => quiesce(w.nginx, 500)));
  log(`nginx -s reload with ${BASE} installs: alone ${reloadOne.map((r) => (r / 1000).toFixed(3)).join(', ')} s; both dispatchers at once ${reloadBoth.map((r) => (r / 1000).toFixed(3)).join(', ')} s`);

  const call = async (method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> => {
    const res = await fetch(`${apiUrl}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, body: (await res.json().catch(() => ({}))) as Record<string, unknown> };
  };
  const journal = async (jobId: number) =>
    (await db.getRepository(SagaStep).find({ where: { jobId }, order: { stepIndex: 'ASC' } })).map((s) => `${s.stepName}:${s.state}${s.error ? ` (${s.error})` : ''}`).join(', ');
  const deadReason = async (jobId: number): Promise<string | null> => {
    const job = await db.getRepository(Job).findOneByOrFail({ id: jobId });
    return job.state === 'dead' || job.state === 'cancelled' ? `job ${jobId} ${job.state}: ${job.lastError}; journal: ${await journal(jobId)}` : null;
  };
  const jobDone = async (jobId: number): Promise<Job> => {
    const started = performance.now();
    for (;;) {
      const job = await db.getRepository(Job).findOneByOrFail({ id: jobId });
      if (job.state === 'done') return job;
      const dead = await deadReason(jobId);
      if (dead) throw new Error(dead);
      if (performance.now() - started > 300_000) throw new Error(`job ${jobId} (${job.kind}) still ${job.state} after 300 s; journal: ${await journal(jobId)}`);
      await sleep(50);
    }
  };
  /** Every job on the install's resource key ended (a certificate change queues the config re-render after itself). */
  const idle = async (installId: number) => {
    const started = performance.now();
    while (await db.getRepository(Job).countBy({ resourceKey: `install:${installId}`, state: In(['ready', 'blocked', 'running']) })) {
      if (performance.now() - started > 300_000) throw new Error(`install ${installId}: its jobs still open after 300 s`);
      await sleep(50);
    }
    const dead = await db.getRepository(Job).findOneBy({ resourceKey: `install:${installId}`, state: 'dead' });
    if (dead) throw new Error(`install ${installId}: job ${dead.id} (${dead.kind}) dead: ${dead.lastError}`);
  };
  const siteIps = async (installId: number): Promise<string[]> => {
    const rows: { ip: string }[] = await db.query(
      'SELECT ip.ip AS ip FROM install_site_ips h JOIN server_ips ip ON ip.id = h.server_ip_id JOIN install_sites s ON s.id = h.install_site_id WHERE s.install_id = ? ORDER BY h.server_id',
      [installId],
    );
    return rows.map((r) => r.ip);
  };
  /** When a worker first claimed the job (its startedAt is the last claim's once it was deferred): watched from the call on. */
  const firstClaim = async (jobId: number): Promise<number | null> => {
    const started = performance.now();
    while (performance.now() - started < 300_000) {
      const job = await db.getRepository(Job).findOne({ where: { id: jobId }, select: { id: true, startedAt: true, state: true } });
      if (job?.startedAt) return job.startedAt.getTime();
      if (job && job.state !== 'ready' && job.state !== 'blocked') return null;
      await sleep(20);
    }
    return null;
  };
  /** Where a job's time went: from the call to its first claim (queue poll), each step (its last attempt; the attempts when deferred), to its end. */
  const profile = async (jobId: number, calledAt: number, claimedAt: number | null) => {
    const job = await db.getRepository(Job).findOneByOrFail({ id: jobId });
    const steps = await db.getRepository(SagaStep).find({ where: { jobId }, order: { stepIndex: 'ASC' } });
    return {
      pickupMs: claimedAt !== null ? claimedAt - calledAt : null,
      totalMs: job.finishedAt ? job.finishedAt.getTime() - calledAt : null,
      attempts: job.attempts,
      steps: Object.fromEntries(steps.map((s) => [s.stepName, s.durationMs ?? 0])),
      stepAttempts: Object.fromEntries(steps.filter((s) => s.attempt > 1).map((s) => [s.stepName, s.attempt])),
    };
  };
  type Profile = Awaited<ReturnType<typeof profile>>;
  const describe = (what: string, profiles: Profile[]) => {
    const names = Object.keys(profiles[0]?.steps ?? {});
    const med = (f: (p: Profile) => number | null) => {
      const xs = profiles.map(f).filter((x): x is number => x !== null);
      return xs.length ? median(xs) : NaN;
    };
    log(`${what}: job first claimed ${med((p) => p.pickupMs)} ms after the call, ended ${med((p) => p.totalMs)} ms after it (medians); job attempts ${profiles.map((p) => p.attempts).join(' ')}`);
    log(`${what}: steps, their last run (median ms): ${names.map((n) => `${n} ${med((p) => p.steps[n] ?? null)}`).join(', ')}`);
    const deferred = profiles.map((p) => JSON.stringify(p.stepAttempts)).filter((s) => s !== '{}');
    if (deferred.length) log(`${what}: steps run more than once (deferred): ${deferred.join(' ')}`);
  };
  /** The nginx rebuilds' applies since job `afterId`: each its own report (total, nginx -t, reload). */
  const applies = async (afterId: number) => {
    const reports: { line: string }[] = await db.query(
      "SELECT l.line FROM job_logs l JOIN jobs j ON j.id = l.job_id WHERE j.kind = 'nginx.rebuild' AND j.id > ? AND l.line LIKE '{%'",
      [afterId],
    );
    return reports
      .map((r) => JSON.parse(r.line) as { nginx: string; timings: { testMs: number; reloadMs: number; totalMs: number } })
      .filter((r) => r.nginx === 'reloaded')
      .map((r) => r.timings);
  };
  const lastJobId = async () => ((await db.query('SELECT MAX(id) AS id FROM jobs')) as { id: number | null }[])[0]?.id ?? 0;
  const describeApplies = (what: string, timings: { testMs: number; reloadMs: number; totalMs: number }[]) => {
    if (!timings.length) return log(`${what}: no nginx rebuild applied`);
    log(`${what}: ${timings.length} nginx rebuilds applied (both dispatchers); apply median ${median(timings.map((x) => x.totalMs))} ms, of which nginx -t ${median(timings.map((x) => x.testMs))} ms and reload ${median(timings.map((x) => x.reloadMs))} ms`);
    // The rest of an apply, each part's median (ms): the catalog's load and render, the dispatcher's files inspected, the generation staged, the old ones pruned (beside the rest).
    const part = (key: string) => median(timings.map((x) => (x as unknown as Record<string, number>)[key] ?? 0));
    log(`${what}: apply parts (median ms): load ${part('loadMs')}, render ${part('renderMs')}, inspect ${part('inspectMs')}, stage ${part('stageMs')}, prune ${part('pruneMs')}`);
  };

  // The operations' installs: real paid orders through the API, built live on both dispatchers.
  const order = async (label: string) => {
    const hostname = `ops-${label}.example.com`;
    const res = await call('POST', '/v1/installs', { orderRef: `OPS-${label}`, customerEmail: `${label}@example.com`, license: 'paid', sites: [{ hostname }] });
    if (res.status !== 202) throw new Error(`order ${label}: HTTP ${res.status} ${JSON.stringify(res.body)}`);
    return { id: res.body.installId as number, jobId: res.body.jobId as number, hostname };
  };
  t = performance.now();
  const placed = await Promise.all(['host', 'ssl', ...Array.from({ length: REMOVALS }, (_, k) => `rm${k + 1}`)].map(order));
  for (const p of placed) await jobDone(p.jobId);
  const shops = [];
  for (const p of placed) {
    const install = await db.getRepository(Install).findOneByOrFail({ id: p.id });
    if (install.status !== 'live') throw new Error(`install ${p.id} is ${install.status}: ${install.statusReason}`);
    const ips = await siteIps(p.id);
    if (ips.length !== 2) throw new Error(`install ${p.id} has ${ips.length} site IPs, not one on each dispatcher`);
    await untilAll(ips, (ip) => answersFromPhp(ip, p.hostname), performance.now(), `install ${p.id} answering`, { boundMs: 10_000 });
    const site = await db.getRepository(InstallSite).findOneByOrFail({ installId: p.id });
    shops.push({ ...p, siteId: site.id, ips });
  }
  log(`${placed.length} installs ordered and live on both dispatchers in ${((performance.now() - t) / 1000).toFixed(2)} s`);
  const [hostShop, sslShop, ...removable] = shops as [(typeof shops)[number], (typeof shops)[number], ...typeof shops];

  // Change hostname: the new name answers from PHP through both dispatchers.
  const hostnameMs: number[] = [];
  const hostnameProfiles: Profile[] = [];
  let hostnameApplies: Awaited<ReturnType<typeof applies>> = [];
  for (let k = 0; k <= RUNS; k++) {
    const warmup = k === 0;
    const from = hostShop.hostname;
    const to = `ops-host-${k}.example.com`;
    await idle(hostShop.id);
    const before = await lastJobId();
    const calledAt = Date.now();
    t = performance.now();
    const res = await call('PATCH', `/v1/installs/${hostShop.id}/sites/${hostShop.siteId}`, { hostname: to });
    if (res.status !== 202) throw new Error(`change hostname ${from} -> ${to}: HTTP ${res.status} ${JSON.stringify(res.body)}`);
    const jobId = res.body.jobId as number;
    const claimed = firstClaim(jobId);
    const ms = await untilAll(hostShop.ips, (ip) => answersFromPhp(ip, to), t, `${to} answering`, { failure: () => deadReason(jobId) });
    await jobDone(jobId);
    await idle(hostShop.id);
    // The old name is gone: nginx's default server answers it 404.
    for (const ip of hostShop.ips) {
      const old = await fetchSite(ip, from, '/');
      if (old.status !== 404) throw new Error(`${from} on ${ip} still answers ${old.status} after the change to ${to}`);
    }
    hostShop.hostname = to;
    if (warmup) {
      log(`change hostname, warm-up: ${(ms / 1000).toFixed(3)} s`);
      continue;
    }
    hostnameMs.push(ms);
    hostnameProfiles.push(await profile(jobId, calledAt, await claimed));
    hostnameApplies = hostnameApplies.concat(await applies(before));
    log(`change hostname ${k}: ${(ms / 1000).toFixed(3)} s`);
  }
  describe('change hostname', hostnameProfiles);
  describeApplies('change hostname', hostnameApplies);

  // Change SSL: an uploaded pair (made with openssl) served to SNI by both dispatchers.
  const corpus = new CertCorpus(join(dir, 'corpus'));
  const pairs = Array.from({ length: RUNS + 1 }, (_, k) => corpus.leaf(`ssl${k}`, [sslShop.hostname], { days: 90 + k }));
  const sslMs: number[] = [];
  const sslProfiles: Profile[] = [];
  let sslApplies: Awaited<ReturnType<typeof applies>> = [];
  for (const [k, pair] of pairs.entries()) {
    const warmup = k === 0;
    const sha = sha256OfPem(pair.leaf);
    await idle(sslShop.id);
    const before = await lastJobId();
    const calledAt = Date.now();
    t = performance.now();
    const res = await call('PUT', `/v1/installs/${sslShop.id}/sites/${sslShop.siteId}/certificate`, { certificate: pair.certificate, key: pair.key });
    if (res.status !== 202) throw new Error(`change SSL (${sha.slice(0, 16)}): HTTP ${res.status} ${JSON.stringify(res.body)}`);
    const jobId = res.body.jobId as number;
    const claimed = firstClaim(jobId);
    // Every 100 ms, not 25: each look is a full TLS handshake with each dispatcher (80 a second at 25 ms, CPU the nginx masters' reload competes
    // with on these two cores); a look that comes later only adds to the figure (at most 0.1 s).
    const ms = await untilAll(sslShop.ips, async (ip) => (await servedLeaf(ip, sslShop.hostname)) === sha, t, `certificate ${sha.slice(0, 16)} served`, { failure: () => deadReason(jobId), everyMs: 100 });
    await jobDone(jobId);
    await idle(sslShop.id);
    // What an operator checks: openssl s_client with the name as SNI gets the new leaf from both.
    for (const ip of sslShop.ips) {
      const seen = await opensslLeaf(ip, sslShop.hostname);
      if (seen !== sha) throw new Error(`openssl s_client on ${ip} for ${sslShop.hostname}: leaf ${seen?.slice(0, 16)}, not ${sha.slice(0, 16)}`);
    }
    if (warmup) {
      log(`change SSL, warm-up (the site's first certificate): ${(ms / 1000).toFixed(3)} s`);
      continue;
    }
    sslMs.push(ms);
    sslProfiles.push(await profile(jobId, calledAt, await claimed));
    sslApplies = sslApplies.concat(await applies(before));
    log(`change SSL ${k}: ${(ms / 1000).toFixed(3)} s`);
  }
  describe('change SSL', sslProfiles);
  describeApplies('change SSL', sslApplies);

  // Remove install: the fresh ones, then the two above; each to `removed`, its sweep read back.
  const removeMs: number[] = [];
  const removeProfiles: Profile[] = [];
  let leftovers = 0;
  let checked = 0;
  for (const shop of [...removable, hostShop, sslShop]) {
    await idle(shop.id);
    const calledAt = Date.now();
    t = performance.now();
    const res = await call('DELETE', `/v1/installs/${shop.id}`);
    if (res.status !== 202) throw new Error(`remove install ${shop.id}: HTTP ${res.status} ${JSON.stringify(res.body)}`);
    const jobId = res.body.jobId as number;
    const claimed = firstClaim(jobId);
    for (;;) {
      const install = await db.getRepository(Install).findOneByOrFail({ id: shop.id });
      if (install.status === 'removed') break;
      const dead = await deadReason(jobId);
      if (dead) throw new Error(`remove install ${shop.id}: ${dead}`);
      if (performance.now() - t > 300_000) throw new Error(`remove install ${shop.id}: still ${install.status} after 300 s`);
      await sleep(25);
    }
    const ms = performance.now() - t;
    await jobDone(jobId);
    const view = await call('GET', `/v1/installs/${shop.id}/removal`);
    const sweep = view.body.sweep as { checked: number; leftovers: unknown[] } | null;
    if (view.status !== 200 || !sweep) throw new Error(`removal view of install ${shop.id}: HTTP ${view.status} ${JSON.stringify(view.body)}`);
    leftovers += sweep.leftovers.length;
    checked += sweep.checked;
    if (sweep.leftovers.length) log(`install ${shop.id}: sweep leftovers ${JSON.stringify(sweep.leftovers)}`);
    // The shop no longer serves: its IP (released, no vhost left on it) refuses, or nginx's default server answers 404.
    for (const ip of shop.ips) {
      const page = await fetchSite(ip, shop.hostname, '/').catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'ECONNREFUSED') return { status: 0 };
        throw error;
      });
      if (page.status !== 404 && page.status !== 0) throw new Error(`removed install ${shop.id}: ${shop.hostname} on ${ip} still answers ${page.status}`);
    }
    removeMs.push(ms);
    removeProfiles.push(await profile(jobId, calledAt, await claimed));
    log(`remove install ${shop.id} (${shop.hostname}): ${(ms / 1000).toFixed(3)} s, sweep checked ${sweep.checked}, leftovers ${sweep.leftovers.length}`);
  }
  describe('remove install', removeProfiles);
  const loadEnd = loadavg();

  process.stdout.write(
    JSON.stringify({
      bench: 'operations',
      base_installs: BASE,
      runs: RUNS,
      hostname_change_p50_s: round(median(seconds(hostnameMs))),
      hostname_change_range_s: range(seconds(hostnameMs)),
      ssl_change_p50_s: round(median(seconds(sslMs))),
      ssl_change_range_s: range(seconds(sslMs)),
      remove_install_p50_s: round(median(seconds(removeMs))),
      remove_install_range_s: range(seconds(removeMs)),
      removals: removeMs.length,
      sweep_leftovers: leftovers,
      sweep_checked: checked,
      target_3s_met: median(hostnameMs) <= 3000 && median(sslMs) <= 3000,
      nginx_reload_2000_s: round(median(seconds(reloadOne))),
      nginx_reload_2000_range_s: range(seconds(reloadOne)),
      nginx_reload_both_2000_s: round(median(seconds(reloadBoth))),
      nginx_reload_both_2000_range_s: range(seconds(reloadBoth)),
      hostname_change_over_reload_both: round(median(hostnameMs) / median(reloadBoth), 2),
      ssl_change_over_reload_both: round(median(sslMs) / median(reloadBoth), 2),
      rebuild_apply_p50_s: hostnameApplies.length + sslApplies.length ? round(median([...hostnameApplies, ...sslApplies].map((x) => x.totalMs / 1000))) : null,
      rebuild_nginx_in_apply_p50_s: hostnameApplies.length + sslApplies.length ? round(median([...hostnameApplies, ...sslApplies].map((x) => (x.testMs + x.reloadMs) / 1000))) : null,
      loadavg_start: loadStart.map((x) => round(x, 2)),
      loadavg_end: loadEnd.map((x) => round(x, 2)),
    }) + '\n',
  );
} finally {
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
