import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import mysql from 'mysql2/promise';
import { simpleGit } from 'simple-git';
import { DataSource, In } from 'typeorm';
import { ApiTokensService } from '@app/auth';
import { AuditEvent, DispatcherConfig, Install, Job, JobLog, SagaStep, Server, SiteName } from '@app/catalog';
import { buildSampleRepository } from '@app/codebases';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { decryptSecret } from '@app/installs';
import { startEngine, type RunningEngine } from '../../apps/engine/src/start-engine.js';
import { createTestCatalog, TEST_SECRETS_KEY, testEngineConfig, type TestCatalog } from '../support/catalog.js';
import { startDispatcherWeb, stopDispatcherWeb, type DispatcherWeb } from '../support/dispatcher-web.js';
import { cleanEnv, spawnWorker, type WorkerProcess } from '../support/processes-engine.js';
import { eventually } from '../support/queue-context.js';
import { startSmtp, type TestSmtp } from '../support/smtp.js';
import { writeDbOptionsFile } from '../support/tenant-db-server.js';
import { readTestbed } from '../support/testbed.js';
import { fetchSite } from '../support/web-installs.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = async (res: Response): Promise<any> => res.json();

/**
 * Orders written by someone who means harm, or that meet what nobody's
 * install made: the API in this process, the builds in a separate worker
 * process (as production runs them, its whole output kept), one SSH
 * dispatcher with nginx and php-fpm, MariaDB. Each order is refused or
 * contained, with nothing changed outside its own install.
 */
describe('hostile orders (API and a worker process, SSH dispatcher, MariaDB)', () => {
  let base: string;
  let catalog: TestCatalog;
  let engine: RunningEngine;
  let worker: WorkerProcess;
  let smtp: TestSmtp;
  let web: DispatcherWeb;
  let admin: string;
  let orders: string;
  let homeRoot: string;
  const groups: Record<string, number> = {};
  const marker = () => join(base, 'pwned-by-sql');
  const victimDb = `shop_victim${Math.random().toString(36).slice(2, 7)}`;

  const call = (token: string, method: string, path: string, body?: unknown) =>
    fetch(`${engine.url}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const ds = () => engine.app.get(DataSource);
  const asAdmin = async (sql: string) => {
    const { mariadb } = readTestbed();
    const connection = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: mariadb.adminUser, password: mariadb.adminPassword, multipleStatements: true });
    try {
      return (await connection.query(sql))[0];
    } finally {
      await connection.end();
    }
  };
  const order = async (body: object) => {
    const res = await call(orders, 'POST', '/v1/installs', body);
    expect(res.status).toBe(202);
    return (await json(res)) as { installId: number; jobId: number };
  };
  const settled = (id: number) =>
    eventually(async () => {
      const view = await json(await call(admin, 'GET', `/v1/installs/${id}`));
      return view.status === 'live' || view.status === 'failed' ? view : null;
    }, 150_000, `install ${id} to settle`);

  /** The sample codebase with some files changed, committed as a new revision: returns the repository and its commit. */
  const hostileRepository = async (name: string, files: Record<string, string>) => {
    const repo = await buildSampleRepository(join(base, 'repos', name));
    for (const [path, content] of Object.entries(files)) {
      mkdirSync(dirname(join(repo.path, path)), { recursive: true });
      writeFileSync(join(repo.path, path), content);
    }
    const git = simpleGit({ baseDir: repo.path }).env({ PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: repo.path });
    await git.add('.');
    await git.commit(`hostile: ${name}`);
    return { path: repo.path, revision: (await git.revparse(['HEAD'])).trim() };
  };

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'hostile-e2e-'));
    chmodSync(base, 0o755);
    const dir = (r: string) => {
      const p = join(base, 'd1', 'srv', r);
      mkdirSync(p, { recursive: true });
      return p;
    };
    const roots = { homeRoot: dir('home'), sharedCodeRoot: dir('shared_codes'), nginxConfDir: dir('nginx'), cronDir: dir('cron.d'), certsRoot: dir('certs') };
    homeRoot = roots.homeRoot;
    [catalog, smtp, web] = await Promise.all([createTestCatalog('mariadb', 'hostile_e2e'), startSmtp(), startDispatcherWeb(join(base, 'web'), roots.nginxConfDir, '127.0.87.200')]);
    const env = { SMTP_URL: smtp.url };
    engine = await startEngine(testEngineConfig(catalog.url, { ENGINE_ROLES: 'api', ...env }));
    // The builds run in a worker process of their own, its every line kept: no secret may be among them.
    worker = await spawnWorker(cleanEnv({ CATALOG_URL: catalog.url, SECRETS_KEY: TEST_SECRETS_KEY, LOG_LEVEL: 'debug', ALLOW_LOCAL_TRANSPORT: 'true', VAR_DIR: join(base, 'worker-var'), ...env }));
    const tokens = engine.app.get(ApiTokensService);
    admin = (await tokens.issue('ops', ['admin'], { actor: 'test', via: 'cli' })).token;
    orders = (await tokens.issue('storefront', ['orders'], { actor: 'test', via: 'cli' })).token;
    const { sshd } = readTestbed();
    const add = async (body: object) => {
      const res = await call(admin, 'POST', '/v1/servers', body);
      expect(res.status).toBe(201);
      return (await json(res)).id as number;
    };
    const d1 = await add({
      hostname: 'hostile1.example.net', roles: ['dispatcher', 'handler'], privateIp: '127.0.87.200', transport: 'ssh', sshHost: sshd.host, sshPort: sshd.port, sshUser: sshd.user,
      sshKeyRef: sshd.privateKeyPath, sshHostKey: sshd.hostKeyFingerprint, ...roots, nginxPidFile: web.pidFile,
    });
    await add({ hostname: 'hostiledb.example.net', roles: ['database'], privateIp: '127.0.0.1', transport: 'local', ...(() => {
      const p = (r: string) => { const x = join(base, 'db', r); mkdirSync(x, { recursive: true }); return x; };
      return { homeRoot: p('home'), sharedCodeRoot: p('shared'), nginxConfDir: p('nginx'), cronDir: p('cron'), certsRoot: p('certs') };
    })(), dbOptionsFile: writeDbOptionsFile(base) });
    expect((await call(admin, 'POST', `/v1/servers/${d1}/ips`, { ips: ['127.0.87.1'], kind: 'shared' })).status).toBe(201);

    const sample = await buildSampleRepository(join(base, 'repos', 'sample'));
    const repos = {
      sample: { path: sample.path, revision: sample.revisions[1]! },
      shell: await hostileRepository('shell', { 'heavymetal/sql/updates/0009_shell.sql': `SELECT 1;\n\\! touch ${marker()}\nSELECT 2;\n` }),
      drop: await hostileRepository('drop', { 'heavymetal/sql/updates/0009_drop.sql': `DROP DATABASE ${victimDb};\n` }),
      // A template that fails, quoting the database password and a secret in the statement.
      secrets: await hostileRepository('secrets', { 'heavymetal/sql/templates/install.sql': 'INSERT INTO no_such_table (a, b) VALUES ({{db_password}}, {{secret.cookie_key}});\n' }),
    };
    for (const [name, repo] of Object.entries(repos)) {
      const res = await json(await call(admin, 'POST', '/v1/code-groups', { name, tier: 'free', repoUrl: repo.path, revision: repo.revision, masterServerId: d1, installLimit: 20, pinned: name !== 'sample' }));
      groups[name] = res.group.id;
      if (name !== 'sample') {
        expect((await call(admin, 'POST', '/v1/pin-rules', { matchAttribute: 'repo', matchValue: name, codeGroupId: res.group.id })).status).toBe(201);
      }
    }
    for (const id of Object.values(groups)) {
      await eventually(async () => (await json(await call(admin, 'GET', `/v1/code-groups/${id}`))).state === 'ready', 120_000, `code group ${id} ready`);
    }
    await asAdmin(`CREATE DATABASE ${victimDb}; CREATE TABLE ${victimDb}.orders (id INT); INSERT INTO ${victimDb}.orders VALUES (7)`);
  }, 300_000);

  afterAll(async () => {
    if (worker) {
      worker.child.kill('SIGTERM');
      await worker.exited;
    }
    await engine?.close();
    await stopDispatcherWeb(web);
    await smtp?.stop();
    await asAdmin(`DROP DATABASE IF EXISTS ${victimDb}; DROP USER IF EXISTS 'dbvictimco'@'127.0.0.1'`).catch(() => undefined);
    await catalog?.drop();
    rmSync(base, { recursive: true, force: true });
  });

  it('never gives an order a name that is an account or a directory of the servers (ro.ot, ce.rts)', async () => {
    const root = await order({ orderRef: 'H-ROOT', customerEmail: 'a@example.com', license: 'free', sites: [{ hostname: 'ro.ot' }] });
    const certs = await order({ orderRef: 'H-CERTS', customerEmail: 'b@example.com', license: 'free', sites: [{ hostname: 'ce.rts' }] });
    const [rootView, certsView] = [await settled(root.installId), await settled(certs.installId)];
    expect({ fsName: rootView.fsName, dbUser: rootView.dbUser, status: rootView.status }).toEqual({ fsName: 'root1', dbUser: 'root1', status: 'live' });
    expect({ fsName: certsView.fsName, status: certsView.status }).toEqual({ fsName: 'certs1', status: 'live' });
    // The admin's root accounts are as they were: the test's admin still logs in.
    expect(await asAdmin("SELECT COUNT(*) AS n FROM mysql.user WHERE User = 'root1'")).toEqual([{ n: 2 }]);
  });

  it('never adopts a home or a database user that exists, and its compensation leaves them as they were', async () => {
    // A directory nobody's install made, holding a file, where the order's home would be.
    mkdirSync(join(homeRoot, 'victimshop'));
    writeFileSync(join(homeRoot, 'victimshop', 'precious.txt'), 'mine\n');
    const home = await order({ orderRef: 'H-HOME', customerEmail: 'c@example.com', license: 'free', sites: [{ hostname: 'victimshop.org' }] });
    const homeView = await settled(home.installId);
    expect(homeView.status).toBe('failed');
    expect(homeView.statusReason).toMatch(/home: .*victimshop already exists on hostile1\.example\.net and was not created by this install/);
    expect(readFileSync(join(homeRoot, 'victimshop', 'precious.txt'), 'utf8')).toBe('mine\n');

    // A database account of the name the order would get, with its own password.
    await asAdmin("CREATE USER 'dbvictimco'@'127.0.0.1' IDENTIFIED BY 'their-own-password'");
    const user = await order({ orderRef: 'H-USER', customerEmail: 'd@example.com', license: 'free', sites: [{ hostname: 'dbvictim.com' }] });
    const userView = await settled(user.installId);
    expect(userView.fsName).toBe('dbvictimco');
    expect(userView.statusReason).toMatch(/database: database user dbvictimco@127\.0\.0\.1 already exists on hostiledb\.example\.net and was not created by this install/);
    const { mariadb } = readTestbed();
    const theirs = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: 'dbvictimco', password: 'their-own-password' });
    await theirs.end();
    expect(await asAdmin("SHOW GRANTS FOR 'dbvictimco'@'127.0.0.1'")).toHaveLength(1);
    // What the install made itself is gone: its home (its marker), its database.
    expect(existsSync(join(homeRoot, 'dbvictimco'))).toBe(false);
    expect(await asAdmin(`SELECT COUNT(*) AS n FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '${userView.dbName}'`)).toEqual([{ n: 0 }]);
  });

  it("refuses a secure hostname that is another shop's hostname (409), creating nothing", async () => {
    const first = await order({ orderRef: 'H-OWNER', customerEmail: 'e@example.com', license: 'free', sites: [{ hostname: 'owned.example.com' }] });
    expect((await settled(first.installId)).status).toBe('live');
    const before = { installs: await ds().getRepository(Install).count(), names: await ds().getRepository(SiteName).count() };
    for (const sites of [[{ hostname: 'thief.example.com', secureHostname: 'owned.example.com' }], [{ hostname: 'OWNED.example.com.' }]]) {
      const res = await call(orders, 'POST', '/v1/installs', { orderRef: `H-THIEF-${sites[0]!.hostname}`, customerEmail: 'f@example.com', license: 'free', sites });
      expect({ status: res.status, code: (await json(res)).code }).toEqual({ status: 409, code: 'HOSTNAME_TAKEN' });
    }
    const unicode = await call(orders, 'POST', '/v1/installs', { orderRef: 'H-UNICODE', customerEmail: 'f@example.com', license: 'free', sites: [{ hostname: 'bücher.example.com' }] });
    expect(unicode.status).toBe(400);
    expect({ installs: await ds().getRepository(Install).count(), names: await ds().getRepository(SiteName).count() }).toEqual(before);
    // The owner's shop still answers as itself.
    expect(await fetchSite('127.0.87.1', 'owned.example.com', '/')).toMatchObject({ status: 200, body: 'shop owned.example.com: Welcome; enjoy the shop\n' });
  });

  it("runs a codebase's SQL as the install: a \\! line runs no shell, another shop's database cannot be dropped", async () => {
    const shell = await order({ orderRef: 'H-SHELL', customerEmail: 'g@example.com', license: 'free', sites: [{ hostname: 'shell.example.com' }], attributes: { repo: 'shell' } });
    const drop = await order({ orderRef: 'H-DROP', customerEmail: 'h@example.com', license: 'free', sites: [{ hostname: 'drop.example.com' }], attributes: { repo: 'drop' } });
    const [shellView, dropView] = [await settled(shell.installId), await settled(drop.installId)];
    expect(shellView.status).toBe('failed');
    // The client passes no client command on (`--binary-mode`, `--sandbox`): the line is refused, nothing runs.
    expect(shellView.statusReason).toMatch(/sql-updates: 0009_shell\.sql line 2 on hostiledb\.example\.net: Unknown command '\\!'/);
    expect(existsSync(marker())).toBe(false);
    expect(dropView.status).toBe('failed');
    expect(dropView.statusReason).toMatch(/0009_drop\.sql line 1 .*denied/i);
    expect(await asAdmin(`SELECT id FROM ${victimDb}.orders`)).toEqual([{ id: 7 }]);
  });

  it("reports a dispatcher whose nginx rebuild failed on /health (details only with a token)", async () => {
    const server = await ds().getRepository(Server).findOneByOrFail({ hostname: 'hostile1.example.net' });
    // The failed installs above asked for rebuilds: once they have run, none clears the error set below before /health is asked.
    await eventually(async () => ((await ds().getRepository(Job).count({ where: { kind: 'nginx.rebuild', state: In(['ready', 'blocked', 'running']) } })) === 0 ? true : null), 60_000, 'queued nginx rebuilds to run');
    const before = await ds().getRepository(DispatcherConfig).findOneByOrFail({ serverId: server.id });
    await ds().getRepository(DispatcherConfig).update({ serverId: server.id }, { lastError: 'nginx is not running on hostile1.example.net (no process for its pid file /x)' });
    try {
      const anonymous = await fetch(`${engine.url}/health`);
      expect({ status: anonymous.status, body: await json(anonymous) }).toEqual({ status: 200, body: { status: 'ok' } });
      const detailed = await json(await call(admin, 'GET', '/health'));
      expect(detailed.info?.nginx ?? detailed.details?.nginx).toMatchObject({ status: 'degraded', failingDispatchers: 1, dispatchers: expect.stringContaining('hostile1.example.net: nginx is not running') });
    } finally {
      await ds().getRepository(DispatcherConfig).update({ serverId: server.id }, { lastError: before.lastError });
    }
  });

  it('keeps every secret out of errors, job output, the journal, audit and the worker\'s log', async () => {
    const failing = await order({ orderRef: 'H-SECRETS', customerEmail: 'i@example.com', license: 'free', sites: [{ hostname: 'secrets.example.com' }], attributes: { repo: 'secrets' } });
    const view = await settled(failing.installId);
    expect(view.status).toBe('failed');
    expect(view.statusReason).toMatch(/template.*install\.sql .*no_such_table/);
    const install = await ds().getRepository(Install).findOneByOrFail({ id: failing.installId });
    const key = engine.app.get<EngineConfig>(ENGINE_CONFIG).secretsKey;
    const secrets = [decryptSecret(key, install.dbPasswordEnc), ...Object.values(JSON.parse(decryptSecret(key, install.secretsEnc!)) as Record<string, string>)];
    expect(secrets.every((s) => s.length >= 16)).toBe(true);
    const everything = [
      JSON.stringify(view),
      JSON.stringify(await json(await call(admin, 'GET', `/v1/jobs/${failing.jobId}`))),
      JSON.stringify(await json(await call(admin, 'GET', `/v1/jobs/${failing.jobId}/output`))),
      JSON.stringify(await ds().getRepository(SagaStep).find({ where: { jobId: failing.jobId } })),
      JSON.stringify(await ds().getRepository(JobLog).find({ where: { jobId: failing.jobId } })),
      JSON.stringify(await ds().getRepository(Job).find()),
      JSON.stringify(await ds().getRepository(AuditEvent).find()),
      worker.output(),
    ].join('\n');
    // The failure is there, quoted: only the secrets are not.
    expect(everything).toContain('no_such_table');
    for (const secret of secrets) expect(everything).not.toContain(secret);
    expect(everything).toContain('[redacted]');
    expect(readdirSync(base).filter((f) => f.startsWith('pwned'))).toEqual([]);
  });
});
