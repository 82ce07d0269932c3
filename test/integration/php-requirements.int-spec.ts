import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { ApiTokensService } from '@app/auth';
import { Job, JobLog, SharedCodeGroup } from '@app/catalog';
import { buildSampleRepository, SAMPLE_MANIFEST, type PhpCheckReport, type SampleRepository } from '@app/codebases';
import { startEngine, type RunningEngine } from '../../apps/engine/src/start-engine.js';
import { createTestCatalog, testEngineConfig, type TestCatalog } from '../support/catalog.js';
import { phpFpmBinary } from '../support/php-fpm.js';
import { eventually } from '../support/queue-context.js';
import { startSshd, stopSshd } from '../support/sshd.js';
import { readTestbed, type SshdServer } from '../support/testbed.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = async (res: Response): Promise<any> => res.json();

/**
 * A code group's PHP requirements checked against this machine's real
 * php-fpm, asked over the testbed's real sshd (the master) and a second sshd
 * (another dispatcher and handler): the clone refuses a group whose
 * requirements a server does not meet, before syncing anything.
 */
describe('PHP requirements of a code group, on real php-fpm over SSH', () => {
  let catalog: TestCatalog;
  let engine: RunningEngine;
  let token: string;
  let base: string;
  let repo: SampleRepository;
  let second: SshdServer;
  const ids: Record<string, number> = {};
  const fpm = phpFpmBinary()!;
  // What the machine's php-fpm says, asked directly: the API must report the same.
  const version = /^PHP (\d+\.\d+\.\d+)/.exec(execFileSync(fpm, ['-v'], { encoding: 'utf8' }))![1]!;
  const memoryLimit = /^memory_limit => (\S+) =>/m.exec(execFileSync(fpm, ['-i'], { encoding: 'utf8' }))![1]!;

  const call = (method: string, path: string, body?: unknown, bearer = token) =>
    fetch(`${engine.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  const roots = (name: string) => {
    const dir = (r: string) => {
      const p = join(base, name, r);
      mkdirSync(p, { recursive: true });
      return p;
    };
    return { homeRoot: dir('home'), sharedCodeRoot: dir('shared_codes'), nginxConfDir: dir('nginx'), cronDir: dir('cron.d'), certsRoot: dir('certs') };
  };
  const sshServer = (sshd: SshdServer) => ({ transport: 'ssh', sshHost: sshd.host, sshPort: sshd.port, sshUser: sshd.user, sshKeyRef: sshd.privateKeyPath, sshHostKey: sshd.hostKeyFingerprint });
  const ds = () => engine.app.get(DataSource);
  const withPhp = (php: object) => ({ ...JSON.parse(JSON.stringify(SAMPLE_MANIFEST)), php });
  /** Creates a group with the manifest given, waits for its clone to end, returns the group, its job and the job's output. */
  const cloned = async (name: string, manifest: object) => {
    const res = await call('POST', '/v1/code-groups', { name, tier: 'paid', repoUrl: repo.path, revision: repo.revisions[0], masterServerId: ids.d1, installLimit: 5, manifest });
    expect(res.status).toBe(202);
    const created = (await json(res)) as { group: { id: number; path: string }; jobId: number };
    const job = await eventually(async () => {
      const j = await ds().getRepository(Job).findOneByOrFail({ id: created.jobId });
      return ['done', 'dead', 'cancelled'].includes(j.state) ? j : null;
    }, 60_000, `the clone of ${name}`);
    const group = await ds().getRepository(SharedCodeGroup).findOneByOrFail({ id: created.group.id });
    const output = (await ds().getRepository(JobLog).find({ where: { jobId: created.jobId }, order: { id: 'ASC' } })).map((l) => l.line);
    return { group, job, output };
  };
  const checkouts = (name: string) => ['d1', 'd2'].filter((server) => existsSync(join(base, server, 'shared_codes', name)));

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'php-requirements-'));
    chmodSync(base, 0o755);
    [catalog, second, repo] = await Promise.all([createTestCatalog('mariadb', 'php_requirements'), startSshd(join(base, 'sshd-2'), '127.0.102.2'), buildSampleRepository(join(base, 'repo'))]);
    engine = await startEngine(testEngineConfig(catalog.url, { ENGINE_ROLES: 'api,worker' }));
    token = (await engine.app.get(ApiTokensService).issue('ops', ['admin'], { actor: 'test', via: 'cli' })).token;
    const add = async (name: string, body: object) => {
      const res = await call('POST', '/v1/servers', body);
      expect(res.status).toBe(201);
      ids[name] = (await json(res)).id;
    };
    await add('d1', { hostname: 'dispatch1.example.net', roles: ['dispatcher'], ...sshServer(readTestbed().sshd), ...roots('d1') });
    await add('d2', { hostname: 'dispatch2.example.net', roles: ['dispatcher', 'handler'], ...sshServer(second), ...roots('d2') });
    await add('db', { hostname: 'db1.example.net', roles: ['database'], transport: 'local', ...roots('db') });
  });
  afterAll(async () => {
    await engine?.close();
    await catalog?.drop();
    if (second) await stopSshd(second);
    rmSync(base, { recursive: true, force: true });
  });

  it('refuses a group needing an extension the servers lack, listing it per server, and syncs nothing', async () => {
    const { group, job, output } = await cloned('needs-nosuchext', withPhp({ extensions: ['pdo_mysql', 'nosuchext', 'Zend OPcache', 'NoOtherExt'] }));
    expect(group.state).toBe('failed');
    expect(job.state).toBe('dead');
    expect(job.lastError).toBe(
      'PermanentJobError: code group needs-nosuchext: PHP requirements not met: ' +
        'dispatch1.example.net: missing PHP extensions: nosuchext, NoOtherExt | dispatch2.example.net: missing PHP extensions: nosuchext, NoOtherExt',
    );
    // Refused at once: a missing extension does not come back by retrying.
    expect(job.attempts).toBe(1);
    expect(output).toContain(`PHP check: dispatch2.example.net: ${fpm} (PHP ${version}): missing PHP extensions: nosuchext, NoOtherExt`);
    expect(checkouts('needs-nosuchext')).toEqual([]);
  });

  it('clones a group whose requirements are met, noting the settings the install\'s pool applies', async () => {
    const wanted = memoryLimit === '1023M' ? '1022M' : '1023M';
    const { group, job, output } = await cloned('meets-php', withPhp({ minVersion: '7.0', extensions: ['pdo_mysql', 'PDO_MySQL', 'opcache'], settings: [{ name: 'memory_limit', value: wanted }] }));
    expect({ state: group.state, job: job.state, error: job.lastError }).toEqual({ state: 'ready', job: 'done', error: null });
    expect(checkouts('meets-php')).toEqual(['d1', 'd2']);
    for (const host of ['dispatch1.example.net', 'dispatch2.example.net']) {
      expect(output).toContain(`PHP check: ${host}: ${fpm} (PHP ${version}): meets the manifest`);
      expect(output).toContain(`  ${host}: memory_limit: the server has ${memoryLimit}; the install's pool sets ${wanted}`);
    }

    const res = await call('GET', `/v1/code-groups/${group.id}/php-check`);
    expect(res.status).toBe(200);
    const report = (await json(res)) as PhpCheckReport;
    expect(report).toMatchObject({ groupId: group.id, group: 'meets-php', required: true, ok: true });
    expect(report.servers.map((s) => [s.hostname, s.ok, s.binary, s.source, s.version, s.error])).toEqual([
      ['dispatch1.example.net', true, fpm, 'fpm', version, null],
      ['dispatch2.example.net', true, fpm, 'fpm', version, null],
    ]);
    expect(report.servers[0]!.settings).toEqual([{ name: 'memory_limit', wanted, actual: memoryLimit, status: 'pool', detail: `the server has ${memoryLimit}; the install's pool sets ${wanted}` }]);
  });

  it('refuses a group needing a PHP newer than the servers run', async () => {
    const { group, job } = await cloned('needs-php99', withPhp({ minVersion: '99.0', extensions: ['pdo_mysql'] }));
    expect(group.state).toBe('failed');
    expect(job.lastError).toBe(
      `PermanentJobError: code group needs-php99: PHP requirements not met: dispatch1.example.net: PHP ${version} is older than the 99.0 the shop needs | dispatch2.example.net: PHP ${version} is older than the 99.0 the shop needs`,
    );
    expect(checkouts('needs-php99')).toEqual([]);
  });

  it('reports through the API: a refused group, one server asked about, a manifest without php, admins only', async () => {
    const groups = (await json(await call('GET', '/v1/code-groups'))) as { id: number; name: string }[];
    const refused = groups.find((g) => g.name === 'needs-nosuchext')!;
    const report = (await json(await call('GET', `/v1/code-groups/${refused.id}/php-check`))) as PhpCheckReport;
    expect(report.ok).toBe(false);
    expect(report.servers.map((s) => [s.hostname, s.ok, s.missingExtensions])).toEqual([
      ['dispatch1.example.net', false, ['nosuchext', 'NoOtherExt']],
      ['dispatch2.example.net', false, ['nosuchext', 'NoOtherExt']],
    ]);
    // One server, even one that does not run the group's PHP (here this machine, reached locally).
    const one = (await json(await call('GET', `/v1/code-groups/${refused.id}/php-check?serverId=${ids.db}`))) as PhpCheckReport;
    expect(one.servers.map((s) => [s.hostname, s.ok, s.missingExtensions])).toEqual([['db1.example.net', false, ['nosuchext', 'NoOtherExt']]]);
    expect((await call('GET', `/v1/code-groups/${refused.id}/php-check?serverId=999999`)).status).toBe(404);
    expect((await call('GET', `/v1/code-groups/${refused.id}/php-check?serverId=x`)).status).toBe(400);

    const { group: plain } = await cloned('no-php', JSON.parse(JSON.stringify(SAMPLE_MANIFEST)));
    expect(plain.state).toBe('ready');
    const noPhp = (await json(await call('GET', `/v1/code-groups/${plain.id}/php-check`))) as PhpCheckReport;
    expect(noPhp).toMatchObject({ required: false, ok: true });
    expect(noPhp.servers.map((s) => [s.hostname, s.ok, s.version, s.problems])).toEqual([
      ['dispatch1.example.net', true, version, []],
      ['dispatch2.example.net', true, version, []],
    ]);

    const support = (await engine.app.get(ApiTokensService).issue('support', ['support'], { actor: 'test', via: 'cli' })).token;
    expect((await call('GET', `/v1/code-groups/${refused.id}/php-check`, undefined, support)).status).toBe(403);
    expect((await call('GET', '/v1/code-groups/999999/php-check')).status).toBe(404);
  });
});
