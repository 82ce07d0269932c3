import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import mysql from 'mysql2/promise';
import { DataSource, In } from 'typeorm';
import { ApiTokensService } from '@app/auth';
import { DatabaseMove, DatabaseMoveItem, Install, InstallServer, SagaStep, Server } from '@app/catalog';
import { buildSampleRepository } from '@app/codebases';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { decryptSecret } from '@app/installs';
import { SiteProbe, type ProbeTarget } from '@app/webserver';
import { startEngine, type RunningEngine } from '../../apps/engine/src/start-engine.js';
import { createTestCatalog, ownInstallIds, TEST_SECRETS_KEY, testEngineConfig, type TestCatalog } from '../support/catalog.js';
import { startDispatcherWeb, stopDispatcherWeb, type DispatcherWeb } from '../support/dispatcher-web.js';
import { startMariadb, stopMariadb } from '../support/mariadb.js';
import { run, startServerProcess } from '../support/processes.js';
import { cleanEnv, runCli, spawnWorker, type WorkerProcess } from '../support/processes-engine.js';
import { eventually } from '../support/queue-context.js';
import { startSmtp, type TestSmtp } from '../support/smtp.js';
import { startSshd, stopSshd } from '../support/sshd.js';
import { writeDbOptionsFile } from '../support/tenant-db-server.js';
import { readTestbed, type MariadbServer, type SshdServer } from '../support/testbed.js';
import { fetchSite } from '../support/web-installs.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = async (res: Response): Promise<any> => res.json();

/** Free installs (one server each, half on each dispatcher) and paid ones (a copy on both): 50, as issue 19's proof says. */
const FREE = Number(process.env.MOVE_DB_FREE_INSTALLS ?? 48);
const PAID = 2;
const NET = '127.0.125';
const FROM_B = 'served by B';
const WELCOME = 'Welcome; enjoy the shop';

/**
 * Issue 19's database failover: installs built by real worker processes on
 * two SSH dispatchers (nginx and php-fpm each) with their tenant databases
 * on a MariaDB of the test's own (A), dumped and restored with their users
 * onto a second one (B, the testbed's), then moved A → B (a worker killed
 * mid-move), A stopped, every shop answering from B; and back.
 */
describe('move-database (two MariaDB servers, two SSH dispatchers, nginx, php-fpm, worker processes)', () => {
  let catalog: TestCatalog;
  let engine: RunningEngine;
  let smtp: TestSmtp;
  let second: SshdServer;
  let dbA: MariadbServer | null = null;
  let base: string;
  let admin: string;
  let env: NodeJS.ProcessEnv;
  let worker: WorkerProcess | null = null;
  const ids: Record<string, number> = {};
  const web: Record<string, DispatcherWeb> = {};
  let installs: Install[] = [];
  let targets: ProbeTarget[] = [];
  /** Per install, the dispatchers (d1, d2) that hold its home. */
  const homesOf = new Map<number, string[]>();

  const call = (token: string, method: string, path: string, body?: unknown) =>
    fetch(`${engine.url}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const roots = (name: string) => {
    const dir = (r: string) => {
      const p = join(base, name, 'srv', r);
      mkdirSync(p, { recursive: true });
      return p;
    };
    return { homeRoot: dir('home'), sharedCodeRoot: dir('shared_codes'), nginxConfDir: dir('nginx'), cronDir: dir('cron.d'), certsRoot: dir('certs') };
  };
  const ssh = (sshd: SshdServer) => ({ transport: 'ssh', sshHost: sshd.host, sshPort: sshd.port, sshUser: sshd.user, sshKeyRef: sshd.privateKeyPath, sshHostKey: sshd.hostKeyFingerprint });
  const ds = () => engine.app.get(DataSource);
  const cliEnv = () => cleanEnv({ CATALOG_URL: catalog.url, SECRETS_KEY: TEST_SECRETS_KEY, LOG_LEVEL: 'warn', ALLOW_LOCAL_TRANSPORT: 'true' });
  const configOf = (server: string, install: Install) => readFileSync(join(base, server, 'srv/home', install.fsName, 'heavymetal/config.php'), 'utf8');
  /** Every config file of every install, hashed: what "nothing changed" compares. */
  const configHashes = () => installs.flatMap((i) => homesOf.get(i.id)!.map((s) => `${i.id}@${s}:${createHash('sha256').update(configOf(s, i)).digest('hex')}`));
  const dbServers = async () => (await ds().getRepository(Install).find({ where: { id: In(installs.map((i) => i.id)) }, order: { id: 'ASC' } })).map((i) => i.dbServerId);
  const allServe = (greeting: string) =>
    eventually(async () => {
      const answers = await Promise.all(targets.map((t) => fetchSite(t.ip, t.hostname, '/', { port: t.port }).catch((e: Error) => ({ status: 0, body: e.message }))));
      return answers.every((a, i) => a.status === 200 && a.body === `shop ${targets[i]!.hostname}: ${greeting}\n`) ? true : null;
    }, 20_000, `every shop to answer "${greeting}"`);
  const report = async (moveId: number) => json(await call(admin, 'GET', `/v1/database-servers/moves/${moveId}`));
  const ended = (moveId: number, timeoutMs = 120_000) =>
    eventually(async () => {
      const r = await report(moveId);
      return r.state === 'done' || r.state === 'failed' ? r : null;
    }, timeoutMs, `move ${moveId} to end`);

  const adminConnection = (db: { host: string; port: number; adminUser: string; adminPassword: string }, database?: string) =>
    mysql.createConnection({ host: db.host, port: db.port, user: db.adminUser, password: db.adminPassword, database, multipleStatements: true });
  /** The installs' databases dumped from A and restored on B, with their accounts (same password hashes, same grants): what a replica holds. */
  const restoreOnB = async (which: Install[]) => {
    const a = dbA!;
    const b = readTestbed().mariadb;
    const dump = await run('mariadb-dump', ['--no-defaults', '--protocol=TCP', `--host=${a.host}`, `--port=${a.port}`, `--user=${a.adminUser}`, '--single-transaction', '--databases', ...which.map((i) => i.dbName)], {
      env: { ...process.env, MYSQL_PWD: a.adminPassword },
      timeoutMs: 60_000,
    });
    await run('mariadb', ['--no-defaults', '--protocol=TCP', `--host=${b.host}`, `--port=${b.port}`, `--user=${b.adminUser}`], { input: dump, env: { ...process.env, MYSQL_PWD: b.adminPassword }, timeoutMs: 60_000 });
    const from = await adminConnection(a);
    const to = await adminConnection(b);
    try {
      const [accounts] = await from.query<mysql.RowDataPacket[]>('SELECT User, Host FROM mysql.user WHERE User IN (?)', [which.map((i) => i.dbUser)]);
      for (const { User, Host } of accounts) {
        const [[create]] = await from.query<mysql.RowDataPacket[]>('SHOW CREATE USER ?@?', [User, Host]);
        await to.query(Object.values(create!)[0] as string);
        const [grants] = await from.query<mysql.RowDataPacket[]>('SHOW GRANTS FOR ?@?', [User, Host]);
        for (const grant of grants) await to.query(Object.values(grant)[0] as string);
      }
    } finally {
      await Promise.all([from.end(), to.end()]);
    }
  };
  const dropOnB = async (which: Install[]) => {
    const b = await adminConnection(readTestbed().mariadb);
    try {
      for (const install of which) {
        await b.query(`DROP DATABASE IF EXISTS \`${install.dbName}\``);
        const [accounts] = await b.query<mysql.RowDataPacket[]>('SELECT User, Host FROM mysql.user WHERE User = ?', [install.dbUser]);
        for (const { User, Host } of accounts) await b.query('DROP USER ?@?', [User, Host]);
      }
    } finally {
      await b.end();
    }
  };
  /** A again, on its data directory, port and socket (stopMariadb shut it down cleanly). */
  const restartA = async () => {
    const a = dbA!;
    const dir = join(base, 'mariadb-a');
    const server = await startServerProcess(
      'mariadbd',
      ['--no-defaults', '--user=root', `--datadir=${join(dir, 'data')}`, `--socket=${a.socket}`, `--port=${a.port}`, `--bind-address=${a.host}`, `--tmpdir=${join(dir, 'tmp')}`, `--log-error=${join(dir, 'error.log')}`, '--skip-log-bin', '--skip-name-resolve', '--innodb-buffer-pool-size=128M', '--character-set-server=utf8mb4', '--collation-server=utf8mb4_general_ci'],
      join(dir, 'mariadbd.log'),
    );
    dbA = { ...a, pid: server.pid };
    await eventually(async () => {
      try {
        await (await adminConnection(dbA!)).end();
        return true;
      } catch {
        return null;
      }
    }, 30_000, 'A to answer again');
  };

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'movedb-e2e-'));
    chmodSync(base, 0o755);
    let repo;
    [catalog, second, repo, smtp, dbA] = await Promise.all([
      createTestCatalog('mariadb', 'movedb_e2e'),
      startSshd(join(base, 'sshd-2'), `${NET}.250`),
      buildSampleRepository(join(base, 'repo')),
      startSmtp(),
      startMariadb(join(base, 'mariadb-a')),
    ]);
    engine = await startEngine(testEngineConfig(catalog.url, { ENGINE_ROLES: 'api', SMTP_URL: smtp.url }));
    await ownInstallIds(ds(), 127001);
    env = cleanEnv({ CATALOG_URL: catalog.url, SECRETS_KEY: TEST_SECRETS_KEY, WORKER_POLL_MS: '100', VAR_DIR: join(base, 'var'), LOG_LEVEL: 'info', SMTP_URL: smtp.url, ALLOW_LOCAL_TRANSPORT: 'true' });
    worker = await spawnWorker(env);
    admin = (await engine.app.get(ApiTokensService).issue('ops', ['admin'], { actor: 'test', via: 'cli' })).token;
    const orders = (await engine.app.get(ApiTokensService).issue('storefront', ['orders'], { actor: 'test', via: 'cli' })).token;
    const add = async (name: string, body: object) => {
      const res = await call(admin, 'POST', '/v1/servers', body);
      expect({ name, status: res.status }).toEqual({ name, status: 201 });
      ids[name] = (await json(res)).id;
    };
    const [web1, web2] = await Promise.all([startDispatcherWeb(join(base, 'web-d1'), roots('d1').nginxConfDir, `${NET}.200`), startDispatcherWeb(join(base, 'web-d2'), roots('d2').nginxConfDir, `${NET}.201`)]);
    web.d1 = web1;
    web.d2 = web2;
    await add('d1', { hostname: 'mv1.example.net', roles: ['dispatcher', 'handler'], privateIp: `${NET}.200`, ...ssh(readTestbed().sshd), ...roots('d1'), nginxPidFile: web1.pidFile });
    await add('d2', { hostname: 'mv2.example.net', roles: ['dispatcher', 'handler'], privateIp: `${NET}.201`, ...ssh(second), ...roots('d2'), nginxPidFile: web2.pidFile });
    // A alone while the installs are built: every tenant database is made there.
    const cnfA = join(base, 'engine-admin-a.cnf');
    writeFileSync(cnfA, `[client]\nhost=${dbA!.host}\nport=${dbA!.port}\nuser=${dbA!.adminUser}\npassword=${dbA!.adminPassword}\n`, { mode: 0o600 });
    await add('dbA', { hostname: 'mvdb-a.example.net', roles: ['database'], privateIp: '127.0.0.1', transport: 'local', ...roots('dbA'), dbOptionsFile: cnfA });
    for (const [name, last] of [['d1', 10], ['d2', 20]] as const) {
      expect((await call(admin, 'POST', `/v1/servers/${ids[name]}/ips`, { ips: [`${NET}.${last}`], kind: 'shared' })).status).toBe(201);
      expect((await call(admin, 'POST', `/v1/servers/${ids[name]}/ips`, { ips: Array.from({ length: PAID }, (_, i) => `${NET}.${last + 1 + i}`), kind: 'dedicated' })).status).toBe(201);
    }
    for (const [name, tier] of [['free', 'free'], ['paid', 'paid']] as const) {
      const created = await json(await call(admin, 'POST', '/v1/code-groups', { name: `mv-${name}`, tier, repoUrl: repo.path, revision: repo.revisions[1], masterServerId: ids.d1, installLimit: 100 }));
      ids[name] = created.group.id;
    }
    for (const name of ['free', 'paid']) await eventually(async () => (await json(await call(admin, 'GET', `/v1/code-groups/${ids[name]}`))).state === 'ready', 60_000, `group ${name} ready`);
    const accepted = await Promise.all([
      ...Array.from({ length: FREE }, async (_, i) => {
        const res = await call(orders, 'POST', '/v1/installs', { orderRef: `MV-F${i}`, customerEmail: `f${i}@example.com`, license: 'free', sites: [{ hostname: `mvf${i}.example.org` }], serverId: i % 2 === 0 ? ids.d1 : ids.d2 });
        expect(res.status).toBe(202);
        return (await json(res)).installId as number;
      }),
      ...Array.from({ length: PAID }, async (_, i) => {
        const res = await call(orders, 'POST', '/v1/installs', { orderRef: `MV-P${i}`, customerEmail: `p${i}@example.com`, license: 'paid', sites: [{ hostname: `mvp${i}.example.org` }] });
        expect(res.status).toBe(202);
        return (await json(res)).installId as number;
      }),
    ]);
    const started = Date.now();
    installs = await eventually(async () => {
      const rows = await ds().getRepository(Install).find({ where: { id: In(accepted) }, order: { id: 'ASC' } });
      if (rows.some((r) => r.status === 'failed')) throw new Error(`a build failed: ${rows.filter((r) => r.status === 'failed').map((r) => r.statusReason).join('; ')}`);
      return rows.every((r) => r.status === 'live') ? rows : null;
    }, 400_000, 'every install live');
    process.stderr.write(`movedb e2e: ${installs.length} installs built in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    const homes = await ds().getRepository(InstallServer).find({ where: { installId: In(accepted) } });
    for (const install of installs) homesOf.set(install.id, homes.filter((h) => h.installId === install.id).map((h) => (h.serverId === ids.d1 ? 'd1' : 'd2')).sort());
    expect(installs.filter((i) => homesOf.get(i.id)!.length === 2)).toHaveLength(PAID);
    targets = (await Promise.all(installs.map((i) => engine.app.get(SiteProbe).targets(i.id)))).flat();
    expect(targets).toHaveLength(FREE + 2 * PAID);
    expect(new Set(installs.map((i) => i.dbServerId))).toEqual(new Set([ids.dbA]));
    await allServe(WELCOME);
    // B: the testbed's MariaDB, known to the catalog only now.
    await add('dbB', { hostname: 'mvdb-b.example.net', roles: ['database'], privateIp: '127.0.0.1', transport: 'local', ...roots('dbB'), dbOptionsFile: writeDbOptionsFile(base) });
  }, 600_000);

  afterAll(async () => {
    if (worker) {
      worker.child.kill('SIGTERM');
      await worker.exited;
    }
    if (installs.length > 0) await dropOnB(installs).catch(() => undefined);
    await engine?.close();
    await catalog?.drop();
    await smtp?.stop();
    await Promise.allSettled([stopDispatcherWeb(web.d1), stopDispatcherWeb(web.d2)]);
    if (second) await stopSshd(second);
    if (dbA) await stopMariadb(dbA).catch(() => undefined);
    if (!process.env.KEEP_TEST_DIRS) rmSync(base, { recursive: true, force: true });
  });

  it('refuses a move while B lacks a database, listing it: nothing changed (files, catalog, no move recorded)', async () => {
    // Every database and account on B but the first install's.
    await restoreOnB(installs.slice(1));
    const before = configHashes();
    const res = await call(admin, 'POST', '/v1/database-servers/move', { from: ids.dbA, to: ids.dbB });
    const body = await json(res);
    expect({ status: res.status, code: body.code }).toEqual({ status: 409, code: 'DATABASE_MOVE_REFUSED' });
    expect(body.details.problems).toEqual([`install ${installs[0]!.id} (${installs[0]!.fsName}): database ${installs[0]!.dbName} is missing on mvdb-b.example.net`]);
    // The same from the command line: the list on stderr, exit 1.
    const cli = await runCli(['move-database', '--from', 'mvdb-a.example.net', '--to', 'mvdb-b.example.net'], base, cliEnv());
    expect(cli.code).toBe(1);
    expect(cli.stderr).toContain(`database ${installs[0]!.dbName} is missing on mvdb-b.example.net`);
    expect(cli.stderr).toContain('DATABASE_MOVE_REFUSED: 1 precondition(s) fail');
    // A support token may read reports, not move.
    const support = (await engine.app.get(ApiTokensService).issue('helpdesk', ['support'], { actor: 'test', via: 'cli' })).token;
    expect((await call(support, 'POST', '/v1/database-servers/move', { from: ids.dbA, to: ids.dbB })).status).toBe(403);
    expect((await call(support, 'GET', '/v1/database-servers/moves')).status).toBe(200);
    for (const [bodyIn, status] of [[{ from: ids.dbA, to: ids.dbA }, 400], [{ from: ids.dbA, to: ids.d1 }, 409], [{ from: ids.dbB, to: ids.dbA }, 409], [{ from: 'x', to: ids.dbB }, 400]] as const) {
      expect({ bodyIn, status: (await call(admin, 'POST', '/v1/database-servers/move', bodyIn)).status }).toEqual({ bodyIn, status });
    }
    expect(configHashes()).toEqual(before);
    expect(await dbServers()).toEqual(installs.map(() => ids.dbA));
    expect(await ds().getRepository(DatabaseMove).count()).toBe(0);
    await allServe(WELCOME);
    await restoreOnB(installs.slice(0, 1));
  }, 120_000);

  it('prints the diff of every config file a move would change (dry run, API and CLI), passwords masked: nothing changed', async () => {
    const before = configHashes();
    const res = await call(admin, 'POST', '/v1/database-servers/move', { from: ids.dbA, to: ids.dbB, dryRun: true });
    expect(res.status).toBe(200);
    const plan = await json(res);
    const portB = readTestbed().mariadb.port;
    expect({ problems: plan.problems, installs: plan.installs.length, from: plan.from, to: plan.to }).toEqual({ problems: [], installs: installs.length, from: 'mvdb-a.example.net', to: 'mvdb-b.example.net' });
    for (const install of installs) {
      const files = plan.installs.find((p: { installId: number }) => p.installId === install.id).files;
      expect(files.map((f: { server: string }) => f.server).sort()).toEqual(homesOf.get(install.id)!.map((s) => (s === 'd1' ? 'mv1.example.net' : 'mv2.example.net')));
      for (const file of files) {
        expect(file.diff).toContain(`-  'db_port' => '${dbA!.port}',`);
        expect(file.diff).toContain(`+  'db_port' => '${portB}',`);
        expect(file.diff).toContain(`port=${portB};dbname=${install.dbName}`);
        expect(file.diff).toContain("'db_password' => '[redacted]'");
      }
    }
    const cli = await runCli(['move-database', '--from', String(ids.dbA), '--to', String(ids.dbB), '--dry-run'], base, cliEnv());
    expect({ code: cli.code, stderr: cli.stderr }).toEqual({ code: 0, stderr: '' });
    expect(cli.stdout).toContain(`dry run: move of ${installs.length} install(s) from mvdb-a.example.net to mvdb-b.example.net: ${FREE + 2 * PAID} config file(s) would change; nothing changed`);
    expect(cli.stdout.split('\n').filter((l) => l.startsWith('+++ '))).toHaveLength(FREE + 2 * PAID);
    expect(cli.stdout).toContain('preconditions: met');
    const secretsKey = engine.app.get<EngineConfig>(ENGINE_CONFIG).secretsKey;
    for (const install of installs) expect(cli.stdout).not.toContain(decryptSecret(secretsKey, install.dbPasswordEnc));
    expect(configHashes()).toEqual(before);
    expect(await dbServers()).toEqual(installs.map(() => ids.dbA));
    expect(await ds().getRepository(DatabaseMove).count()).toBe(0);
  }, 120_000);

  it('moves every install from A to B through a kill -9 of its worker; with A stopped every shop answers from B', async () => {
    const b = await adminConnection(readTestbed().mariadb);
    try {
      for (const install of installs) await b.query(`UPDATE \`${install.dbName}\`.settings SET value = ? WHERE name = 'greeting'`, [FROM_B]);
    } finally {
      await b.end();
    }
    // Something in each install's cache, which the move empties.
    for (const install of installs) for (const server of homesOf.get(install.id)!) writeFileSync(join(base, server, 'srv/home', install.fsName, 'heavymetal/cache/compiled.php'), '<?php // A');
    const res = await call(admin, 'POST', '/v1/database-servers/move', { from: ids.dbA, to: ids.dbB, concurrency: 2 });
    expect(res.status).toBe(202);
    const queued = await json(res);
    expect(queued).toMatchObject({ from: 'mvdb-a.example.net', to: 'mvdb-b.example.net', installIds: installs.map((i) => i.id) });
    // One at a time.
    expect((await json(await call(admin, 'POST', '/v1/database-servers/move', { from: ids.dbA, to: ids.dbB }))).code).toBe('DATABASE_MOVE_RUNNING');
    const killed: string[] = [];
    for (let round = 0; round < 2; round++) {
      const items = await eventually(async () => {
        const rows = await ds().getRepository(DatabaseMoveItem).find({ where: { moveId: queued.moveId } });
        const done = rows.filter((i) => i.state === 'done').length;
        return done >= (round + 1) * 3 || done === rows.length ? rows : null;
      }, 60_000, 'a few installs moved');
      if (items.every((i) => i.state === 'done')) break;
      killed.push(`${items.filter((i) => i.state === 'done').length} done, ${items.filter((i) => i.state === 'running').length} running`);
      worker!.child.kill('SIGKILL');
      await worker!.exited;
      // A dead worker's lease runs out (fast-forwarded, as time would).
      await ds().query(`UPDATE jobs SET fence = fence + 1, lease_expires_at = '2000-01-01 00:00:00.000' WHERE state = 'running'`);
      worker = await spawnWorker(env);
    }
    process.stderr.write(`movedb e2e: killed the worker at ${killed.join('; ')}\n`);
    expect(killed.length).toBeGreaterThan(0);
    const done = await ended(queued.moveId);
    expect({ state: done.state, error: done.error, counts: done.counts }).toEqual({ state: 'done', error: null, counts: expect.objectContaining({ total: installs.length, done: installs.length, failed: 0 }) });
    const seconds = (new Date(done.finishedAt).getTime() - new Date(done.startedAt).getTime()) / 1000;
    process.stderr.write(`movedb e2e: moved ${installs.length} installs A -> B in ${seconds.toFixed(1)} s (2 at a time, ${killed.length} kill(s))\n`);
    for (const item of done.items) {
      const install = installs.find((i) => i.id === item.installId)!;
      expect(item).toMatchObject({ state: 'done', filesRendered: homesOf.get(install.id)!.length, cachesCleared: true, error: null });
      // The install's saga: every step done once its job ended, whatever the kills interrupted.
      const steps = await ds().getRepository(SagaStep).find({ where: { jobId: item.jobId }, order: { stepIndex: 'ASC' } });
      expect(steps.map((s) => `${s.stepName}:${s.state}`)).toEqual(['check:done', 'config:done', 'catalog:done', 'caches:done']);
    }
    expect(await dbServers()).toEqual(installs.map(() => ids.dbB));
    const portB = readTestbed().mariadb.port;
    for (const install of installs) {
      for (const server of homesOf.get(install.id)!) {
        expect(configOf(server, install)).toContain(`'db_dsn' => 'mysql:host=127.0.0.1;port=${portB};dbname=${install.dbName};charset=utf8mb4',`);
        expect(readdirSync(join(base, server, 'srv/home', install.fsName, 'heavymetal/cache'))).toEqual([]);
      }
    }
    // A is gone: every shop answers from B, through both dispatchers.
    await stopMariadb(dbA!);
    await allServe(FROM_B);
    expect((await json(await call(admin, 'GET', '/v1/database-servers/moves'))).map((m: { state: string; counts: { done: number } }) => `${m.state}:${m.counts.done}`)).toEqual([`done:${installs.length}`]);
  }, 300_000);

  it('moves them back with the snippet once A is back: configs point at A, shops answer from A', async () => {
    await restartA();
    const run_ = await runCli(['move-database', '--from', 'mvdb-b.example.net', '--to', 'mvdb-a.example.net'], base, cliEnv());
    expect({ code: run_.code, stderr: run_.stderr }).toEqual({ code: 0, stderr: '' });
    const moveId = Number(/database move (\d+) from mvdb-b\.example\.net to mvdb-a\.example\.net queued/.exec(run_.stdout)![1]);
    expect(run_.stdout).toContain(`database move ${moveId}: done (${installs.length} done, 0 skipped, 0 failed of ${installs.length})`);
    expect(await dbServers()).toEqual(installs.map(() => ids.dbA));
    for (const install of installs) for (const server of homesOf.get(install.id)!) expect(configOf(server, install)).toContain(`port=${dbA!.port};dbname=${install.dbName}`);
    await allServe(WELCOME);
    // An install with a home on d1 (the orders arrive at once: which one got the lowest id, and so on which server it lives, varies).
    const onD1 = installs.find((i) => homesOf.get(i.id)!.includes('d1'))!;
    expect(existsSync(join(base, 'd1/srv/home', onD1.fsName, 'heavymetal/config.php'))).toBe(true);
    const dbServer = await ds().getRepository(Server).findOneByOrFail({ id: ids.dbA });
    expect(dbServer.hostname).toBe('mvdb-a.example.net');
  }, 200_000);
});
