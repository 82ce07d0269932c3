import { spawn, spawnSync, execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, createReadStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, normalize } from 'node:path';
import type { DataSource } from 'typeorm';
import { AuditEvent, SharedCodeGroup } from '@app/catalog';
import { buildSampleRepository } from '@app/codebases';
import { createTestCatalog, openCatalog, TEST_SECRETS_KEY, type TestCatalog } from '../support/catalog.js';
import { cleanEnv, ENGINE_MAIN, runCli } from '../support/processes-engine.js';
import { eventually } from '../support/queue-context.js';
import { startSshd, stopSshd } from '../support/sshd.js';
import { readTestbed, type SshdServer } from '../support/testbed.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = async (res: Response): Promise<any> => res.json();

const TOKEN = 'glpat-Zq81xK2mTopSecret';
const USER_TOKEN = 'ghp_UserAsToken7731';

/**
 * Repository URLs with credentials (`http://user:token@host/repo.git`): the
 * token reaches the git server, and nothing else. The built engine runs as
 * an operator runs it (its own process, its log captured); a git server over
 * HTTP asks for the credentials (Basic); the clone runs on an SSH dispatcher
 * and is synced to a second one.
 */
describe('code groups from repository URLs with credentials', () => {
  let catalog: TestCatalog;
  let ds: DataSource;
  let base: string;
  let second: SshdServer;
  let git: HttpServer;
  let gitUrl: string;
  let engine: ChildProcess;
  let log = '';
  let api: string;
  let token: string;
  const seen: { path: string; auth: string | undefined }[] = [];
  const ids: Record<string, number> = {};
  const bodies: string[] = [];

  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${api}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    bodies.push(text);
    return { status: res.status, body: text === '' ? null : JSON.parse(text) };
  };
  const roots = (name: string) => {
    const dir = (r: string) => {
      const p = join(base, name, r);
      mkdirSync(p, { recursive: true });
      return p;
    };
    return { homeRoot: dir('home'), sharedCodeRoot: dir('shared_codes'), nginxConfDir: dir('nginx'), cronDir: dir('cron.d'), certsRoot: dir('certs') };
  };
  const sshServer = (sshd: SshdServer) => ({
    transport: 'ssh',
    sshHost: sshd.host,
    sshPort: sshd.port,
    sshUser: sshd.user,
    sshKeyRef: sshd.privateKeyPath,
    sshHostKey: sshd.hostKeyFingerprint,
  });
  const group = (id: number) => ds.getRepository(SharedCodeGroup).findOneByOrFail({ id });
  const settled = (id: number, timeoutMs = 60_000) =>
    eventually(async () => {
      const g = await group(id);
      return g.state === 'ready' || g.state === 'failed' ? g : null;
    }, timeoutMs, `code group ${id}`);

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'code-groups-creds-'));
    chmodSync(base, 0o755);
    const repo = await buildSampleRepository(join(base, 'repo'));
    // The git server: the sample repository over plain ("dumb") HTTP, behind Basic authentication.
    const served = join(base, 'served');
    mkdirSync(served);
    execFileSync('git', ['clone', '--quiet', '--bare', repo.path, join(served, 'shop.git')]);
    execFileSync('git', ['-C', join(served, 'shop.git'), 'update-server-info']);
    const expected = `Basic ${Buffer.from(`deploy:${TOKEN}`).toString('base64')}`;
    git = createServer((req, res) => {
      const path = decodeURIComponent((req.url ?? '/').split('?')[0]!);
      seen.push({ path: req.url ?? '', auth: req.headers.authorization });
      if (req.headers.authorization !== expected) {
        res.writeHead(401, { 'www-authenticate': 'Basic realm="git"' }).end();
        return;
      }
      const file = normalize(join(served, path));
      if (!file.startsWith(served + '/') || !existsSync(file) || !statSync(file).isFile()) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      createReadStream(file).pipe(res);
    });
    await new Promise<void>((resolve) => git.listen(0, '127.0.133.2', resolve));
    gitUrl = `127.0.133.2:${(git.address() as AddressInfo).port}`;

    [catalog, second] = await Promise.all([createTestCatalog('mariadb', 'code_groups_creds'), startSshd(join(base, 'sshd-2'), '127.0.133.3')]);
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.133.1', () => {
        const p = (probe.address() as AddressInfo).port;
        probe.close(() => resolve(p));
      });
    });
    api = `http://127.0.133.1:${port}`;
    const env = cleanEnv({ CATALOG_URL: catalog.url, SECRETS_KEY: TEST_SECRETS_KEY, ENGINE_ROLES: 'api,worker', HOST: '127.0.133.1', PORT: String(port), LOG_LEVEL: 'debug', WORKER_POLL_MS: '200' });
    engine = spawn(process.execPath, [ENGINE_MAIN], { cwd: base, env, stdio: ['ignore', 'pipe', 'pipe'] });
    engine.stdout!.on('data', (c: Buffer) => (log += c.toString()));
    engine.stderr!.on('data', (c: Buffer) => (log += c.toString()));
    await eventually(async () => log.includes(`${api}/v1`), 30_000, `the engine's banner:\n${log}`);
    ds = await openCatalog(catalog, { migrate: false });
    token = /^(spe_\S+)$/m.exec((await runCli(['token:create', '--scope', 'admin'], base, env)).stdout)![1]!;

    const add = async (name: string, body: object) => {
      const res = await call('POST', '/v1/servers', body);
      expect(res.status).toBe(201);
      ids[name] = res.body.id;
    };
    await add('d1', { hostname: 'dispatch1.example.net', roles: ['dispatcher'], ...sshServer(readTestbed().sshd), ...roots('d1') });
    await add('d2', { hostname: 'dispatch2.example.net', roles: ['dispatcher', 'handler'], ...sshServer(second), ...roots('d2') });
  }, 180_000);
  afterAll(async () => {
    if (engine && engine.exitCode === null) {
      const exited = new Promise((resolve) => engine.once('exit', resolve));
      engine.kill('SIGTERM');
      await exited;
    }
    await ds?.destroy();
    await catalog?.drop();
    if (second) await stopSshd(second);
    await new Promise((resolve) => git?.close(resolve));
    rmSync(base, { recursive: true, force: true });
  });

  it('clones with the credentials given to git only; the API, job output, audit, engine log and checkouts never show them', async () => {
    const good = await call('POST', '/v1/code-groups', { name: 'private', tier: 'paid', repoUrl: `http://deploy:${TOKEN}@${gitUrl}/shop.git`, revision: 'broken', masterServerId: ids.d1, installLimit: 5 });
    expect(good.status).toBe(202);
    expect(good.body.group.repoUrl).toBe(`http://deploy:***@${gitUrl}/shop.git`);
    // Wrong path on the same server, and a token given as the user name, on a port nothing listens on: both fail.
    const missing = await call('POST', '/v1/code-groups', { name: 'private-missing', tier: 'paid', repoUrl: `http://deploy:${TOKEN}@${gitUrl}/nope.git`, revision: 'main', masterServerId: ids.d1, installLimit: 5 });
    const closed = await call('POST', '/v1/code-groups', { name: 'private-closed', tier: 'paid', repoUrl: `http://${USER_TOKEN}@127.0.133.2:9/shop.git`, revision: 'main', masterServerId: ids.d1, installLimit: 5 });
    expect(closed.body.group.repoUrl).toBe('http://***@127.0.133.2:9/shop.git');

    const ready = await settled(good.body.group.id);
    expect({ state: ready.state, revision: ready.revision }).toEqual({ state: 'ready', revision: expect.stringMatching(/^[0-9a-f]{40}$/) });
    // git asked without credentials first, then sent them in the Authorization header, never in a URL.
    expect(seen[0]!.auth).toBeUndefined();
    expect(seen.some((r) => r.auth === `Basic ${Buffer.from(`deploy:${TOKEN}`).toString('base64')}`)).toBe(true);
    expect(seen.every((r) => !r.path.includes(TOKEN))).toBe(true);
    // The group's repository on the master does not keep the token (its remote is the bare URL); the server it was synced to gets the release alone.
    const config = readFileSync(join(base, 'd1/shared_codes/private/repo.git/config'), 'utf8');
    expect(config).toContain(`url = http://${gitUrl}/shop.git`);
    expect(config).not.toContain(TOKEN);
    expect(readdirSync(join(base, 'd2/shared_codes/private'))).toEqual(['releases']);
    // Nowhere under either server's shared code: grep finds nothing (exit 1).
    expect(spawnSync('grep', ['-rlF', TOKEN, join(base, 'd1/shared_codes'), join(base, 'd2/shared_codes')]).status).toBe(1);

    for (const created of [missing, closed]) {
      expect((await settled(created.body.group.id, 120_000)).state).toBe('failed');
      // The job records its end just after the group's state: wait for it.
      const job = await eventually(async () => {
        const answer = await call('GET', `/v1/jobs/${created.body.jobId}`);
        return answer.body.state === 'running' ? null : answer;
      }, 30_000, `job ${created.body.jobId} to end`);
      expect(job.body.state).toBe('dead');
      expect(job.body.lastError).toMatch(/code group private-(missing|closed): /);
    }
    for (const created of [good, missing, closed]) {
      await call('GET', `/v1/jobs/${created.body.jobId}`);
      const output = await call('GET', `/v1/jobs/${created.body.jobId}/output`);
      expect(output.status).toBe(200);
      await call('GET', `/v1/code-groups/${created.body.group.id}`);
    }
    const listed = await call('GET', '/v1/code-groups');
    expect(listed.body.map((g: { repoUrl: string }) => g.repoUrl).sort()).toEqual(
      [`http://deploy:***@${gitUrl}/nope.git`, `http://deploy:***@${gitUrl}/shop.git`, 'http://***@127.0.133.2:9/shop.git'].sort(),
    );
    const output = bodies.join('\n');
    expect(output).toContain('cloning http://deploy:***@');
    const audit = JSON.stringify(await ds.getRepository(AuditEvent).find({ where: { targetType: 'code_group' } }));
    expect(audit).toContain(`http://deploy:***@${gitUrl}/shop.git`);
    // Only the catalog keeps the real URL: git needs it.
    expect((await group(good.body.group.id)).repoUrl).toContain(TOKEN);

    expect(log).toContain('/v1/code-groups');
    for (const [where, text] of [['API responses and job output', output], ['audit events', audit], ['engine log', log]] as const) {
      for (const secret of [TOKEN, USER_TOKEN, encodeURIComponent(TOKEN), Buffer.from(`deploy:${TOKEN}`).toString('base64')]) {
        expect({ where, leaked: text.includes(secret) }).toEqual({ where, leaked: false });
      }
    }
  }, 240_000);
});
