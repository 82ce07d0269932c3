import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DataSource } from 'typeorm';
import { Server, SharedCodeGroup } from '@app/catalog';
import { SAMPLE_MANIFEST, type PhpCheckReport } from '@app/codebases';
import { createTestCatalog, openCatalog, TEST_SECRETS_KEY, type TestCatalog } from '../support/catalog.js';
import { phpFpmBinary } from '../support/php-fpm.js';
import { cleanEnv, runCli } from '../support/processes-engine.js';
import { testServer } from '../support/server-roots.js';
import { readTestbed } from '../support/testbed.js';

/** `codegroup:php-check` as an operator runs it (the built CLI), against this machine's php-fpm over the testbed's sshd. */
describe('codegroup:php-check snippet', () => {
  let catalog: TestCatalog;
  let ds: DataSource;
  let cwd: string;
  let env: NodeJS.ProcessEnv;
  let dispatcher: Server;
  let local: Server;
  const version = /^PHP (\d+\.\d+\.\d+)/.exec(execFileSync(phpFpmBinary()!, ['-v'], { encoding: 'utf8' }))![1]!;

  const group = (name: string, php: object | undefined, masterServerId: number) =>
    ds.getRepository(SharedCodeGroup).save({
      name,
      tier: 'paid',
      repoUrl: '/srv/repos/shop',
      revision: null,
      path: join(cwd, 'srv/shared_codes', name),
      masterServerId,
      installLimit: 5,
      installCount: 0,
      pinned: false,
      manifest: { ...JSON.parse(JSON.stringify(SAMPLE_MANIFEST)), ...(php ? { php } : {}) },
      state: 'pending',
    });

  beforeAll(async () => {
    catalog = await createTestCatalog('mariadb', 'phpcheckcli');
    cwd = mkdtempSync(join(tmpdir(), 'phpcheckcli-'));
    chmodSync(cwd, 0o755);
    env = cleanEnv({ CATALOG_URL: catalog.url, SECRETS_KEY: TEST_SECRETS_KEY, LOG_LEVEL: 'warn', ALLOW_LOCAL_TRANSPORT: 'true' });
    expect((await runCli(['migrate'], cwd, env)).code).toBe(0);
    ds = await openCatalog(catalog, { migrate: false });
    dispatcher = await ds.getRepository(Server).save(testServer(join(cwd, 'd1'), 'dispatch1.example.net', ['dispatcher', 'handler'], readTestbed().sshd));
    local = await ds.getRepository(Server).save(testServer(join(cwd, 'db'), 'db1.example.net', ['database'], null));
  });
  afterAll(async () => {
    await ds?.destroy();
    await catalog?.drop();
    rmSync(cwd, { recursive: true, force: true });
  });

  it('prints each server\'s problems and exits 1 when a requirement is not met', async () => {
    await group('needs-ext', { minVersion: '99.0', extensions: ['pdo_mysql', 'nosuchext'] }, dispatcher.id);
    const result = await runCli(['codegroup:php-check', 'needs-ext'], cwd, env);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(`FAIL dispatch1.example.net (server ${dispatcher.id}): ${phpFpmBinary()!} (PHP ${version})`);
    expect(result.stdout).toContain('problem: missing PHP extensions: nosuchext');
    expect(result.stdout).toContain(`problem: PHP ${version} is older than the 99.0 the shop needs`);
    expect(result.stderr).toContain('error: code group needs-ext: the PHP requirements are not met on dispatch1.example.net');
  });

  it('passes a group whose requirements are met, on one server chosen by id; prints JSON on request', async () => {
    const met = await group('meets', { minVersion: '7.0', extensions: ['pdo_mysql'], settings: [{ name: 'memory_limit', value: '1023M' }] }, dispatcher.id);
    const result = await runCli(['codegroup:php-check', String(met.id), '--server', String(local.id)], cwd, env);
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
    expect(result.stdout).toContain(`ok   db1.example.net (server ${local.id}): ${phpFpmBinary()!} (PHP ${version})`);
    expect(result.stdout).toMatch(/note: memory_limit: the server has \S+; the install's pool sets 1023M/);

    const asJson = await runCli(['codegroup:php-check', 'meets', '--json'], cwd, env);
    expect(asJson.code).toBe(0);
    const report = JSON.parse(asJson.stdout) as PhpCheckReport;
    expect(report).toMatchObject({ group: 'meets', required: true, ok: true, servers: [{ hostname: 'dispatch1.example.net', ok: true, version, source: 'fpm' }] });
  });

  it('refuses a bad group or server argument', async () => {
    expect((await runCli(['codegroup:php-check', '../etc'], cwd, env)).stderr).toContain('the code group is its id or its name');
    const missing = await runCli(['codegroup:php-check', 'no-such-group'], cwd, env);
    expect({ code: missing.code, stderr: missing.stderr.trim() }).toEqual({ code: 1, stderr: 'error: Code group no-such-group does not exist' });
    expect((await runCli(['codegroup:php-check', 'meets', '--server', 'x'], cwd, env)).code).toBe(1);
  });
});
