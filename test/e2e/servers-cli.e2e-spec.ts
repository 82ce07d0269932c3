import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestCatalog, TEST_SECRETS_KEY, type TestCatalog } from '../support/catalog.js';
import { cleanEnv, runCli } from '../support/processes-engine.js';

/** The inventory snippets as operators run them, on a MariaDB catalog. */
describe('server snippets', () => {
  let catalog: TestCatalog;
  let cwd: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    catalog = await createTestCatalog('mariadb', 'servercli');
    cwd = mkdtempSync(join(tmpdir(), 'servercli-'));
    env = cleanEnv({ CATALOG_URL: catalog.url, SECRETS_KEY: TEST_SECRETS_KEY, LOG_LEVEL: 'warn', ALLOW_LOCAL_TRANSPORT: 'true' });
    expect((await runCli(['migrate'], cwd, env)).code).toBe(0);
  });
  afterAll(async () => {
    await catalog?.drop();
    rmSync(cwd, { recursive: true, force: true });
  });

  it('adds a server from a file, lists, checks, manages IPs and state, removes it', async () => {
    const root = (r: string) => {
      const p = join(cwd, 'srv', r);
      mkdirSync(p, { recursive: true });
      return p;
    };
    const file = join(cwd, 'server.json');
    writeFileSync(
      file,
      JSON.stringify({
        hostname: 'd1.example.net',
        roles: ['dispatcher'],
        transport: 'local',
        homeRoot: root('home'),
        sharedCodeRoot: root('shared_codes'),
        nginxConfDir: root('nginx'),
        cronDir: root('cron.d'),
        certsRoot: root('certs'),
      }),
    );
    const added = await runCli(['server:add', '--file', file], cwd, env);
    expect(added.code).toBe(0);
    const id = /server (\d+) d1\.example\.net added/.exec(added.stdout)?.[1];
    expect(id).toBeDefined();
    expect((await runCli(['server:list'], cwd, env)).stdout).toMatch(new RegExp(`${id}\\s+d1\\.example\\.net\\s+dispatcher\\s+local`));

    const check = await runCli(['server:check', id!], cwd, env);
    expect(check.code).toBe(0);
    expect(check.stdout).toContain('ok   reachable');
    expect(check.stdout).toContain('ok   tool nginx: /usr/sbin/nginx');

    expect((await runCli(['server:ips:add', id!, '203.0.113.5', '203.0.113.6', '--kind', 'floating', '--group', 'carp2'], cwd, env)).code).toBe(0);
    const shown = await runCli(['server:show', id!], cwd, env);
    expect(shown.stdout).toMatch(/203\.0\.113\.5\s+floating\s+carp2/);
    const badIp = await runCli(['server:ips:add', id!, '203.0.113.7;reboot'], cwd, env);
    expect(badIp.code).toBe(1);
    expect(badIp.stderr).toContain('each ip must be an IP address');

    expect((await runCli(['server:state', id!, 'draining'], cwd, env)).stdout).toContain('is draining');
    expect((await runCli(['server:state', id!, 'melting'], cwd, env)).code).toBe(1);
    expect((await runCli(['server:ips:remove', id!, '203.0.113.6'], cwd, env)).code).toBe(0);
    expect((await runCli(['server:remove', id!], cwd, env)).code).toBe(0);
    expect((await runCli(['server:show', id!], cwd, env)).stderr).toContain(`Server ${id} does not exist`);
  }, 180_000);

  it('refuses a bad server file with every problem listed, adding nothing', async () => {
    const file = join(cwd, 'bad.json');
    writeFileSync(file, JSON.stringify({ hostname: 'x y', roles: [], transport: 'ftp', homeRoot: '../etc' }));
    const res = await runCli(['server:add', '--file', file], cwd, env);
    expect(res.code).toBe(1);
    for (const field of ['hostname', 'roles', 'transport', 'homeRoot', 'certsRoot']) expect(res.stderr).toContain(`${field}:`);
    expect((await runCli(['server:add', '--file', join(cwd, 'missing.json')], cwd, env)).stderr).toContain('cannot read');

    // The roots of a server never hold one another; a local server needs ALLOW_LOCAL_TRANSPORT outside the embedded default.
    const server = { hostname: 'd2.example.net', roles: ['dispatcher'], transport: 'local', homeRoot: '/srv/d2/home', sharedCodeRoot: '/srv/d2/shared', nginxConfDir: '/srv/d2/nginx', cronDir: '/srv/d2/cron.d' };
    const nested = join(cwd, 'nested.json');
    writeFileSync(nested, JSON.stringify({ ...server, certsRoot: '/srv/d2/home/certs' }));
    const overlapping = await runCli(['server:add', '--file', nested], cwd, env);
    expect(overlapping.code).toBe(1);
    expect(overlapping.stderr).toContain('certsRoot /srv/d2/home/certs lies inside homeRoot /srv/d2/home');
    const local = join(cwd, 'local.json');
    writeFileSync(local, JSON.stringify({ ...server, certsRoot: '/srv/d2/certs' }));
    const refused = await runCli(['server:add', '--file', local], cwd, { ...env, ALLOW_LOCAL_TRANSPORT: 'false' });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('ALLOW_LOCAL_TRANSPORT=true');
    expect((await runCli(['server:list'], cwd, env)).stdout.trim().split('\n')).toHaveLength(1);
  }, 180_000);
});
