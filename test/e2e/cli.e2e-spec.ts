import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MYSQL_MIGRATIONS } from '../../migrations/mysql/index.js';
import { startEngine } from '../../apps/engine/src/start-engine.js';
import { createTestCatalog, testEngineConfig, TEST_SECRETS_KEY, type TestCatalog } from '../support/catalog.js';
import { cleanEnv, runCli } from '../support/processes-engine.js';

/** The snippets as operators run them: the built CLI, a MariaDB catalog, exit codes that mean something. */
describe('CLI snippets on a MariaDB catalog', () => {
  let catalog: TestCatalog;
  let cwd: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    catalog = await createTestCatalog('mariadb', 'cli');
    cwd = mkdtempSync(join(tmpdir(), 'cli-'));
    env = cleanEnv({ CATALOG_URL: catalog.url, SECRETS_KEY: TEST_SECRETS_KEY, LOG_LEVEL: 'warn' });
  });
  afterAll(async () => {
    await catalog?.drop();
    rmSync(cwd, { recursive: true, force: true });
  });

  it('migrates a new catalog once, then has nothing to do', async () => {
    const dry = await runCli(['migrate', '--dry-run'], cwd, env);
    expect(dry).toMatchObject({ code: 0 });
    expect(dry.stdout).toContain(`${MYSQL_MIGRATIONS.length} pending migration(s) on mariadb`);
    const first = await runCli(['migrate'], cwd, env);
    expect(first.code).toBe(0);
    for (const migration of MYSQL_MIGRATIONS) expect(first.stdout).toContain(`applied ${migration.name}`);
    const second = await runCli(['migrate'], cwd, env);
    expect(second.stdout.trim()).toBe('catalog (mariadb) is up to date');
  });

  it('creates tokens that the API accepts with exactly their scopes', async () => {
    const created = await runCli(['token:create', '--scope', 'orders', '--name', 'storefront'], cwd, env);
    expect(created.code).toBe(0);
    const orders = /^(spe_\S+)$/m.exec(created.stdout)?.[1];
    expect(orders).toBeDefined();
    const admin = /^(spe_\S+)$/m.exec((await runCli(['token:create', '--scope', 'admin'], cwd, env)).stdout)?.[1];

    const engine = await startEngine(testEngineConfig(catalog.url, { MIGRATIONS_RUN: 'false' }));
    try {
      const list = (t: string) => fetch(`${engine.url}/v1/tokens`, { headers: { authorization: `Bearer ${t}` } });
      expect((await list(orders!)).status).toBe(403);
      expect((await list(admin!)).status).toBe(200);

      const listing = await runCli(['token:list'], cwd, env);
      expect(listing.stdout).toMatch(/storefront\s+spe_\S{8}\s+orders/);
      expect(listing.stdout).not.toContain(orders!);
      const id = /^(\d+)\s+storefront/m.exec(listing.stdout)?.[1];
      const revoked = await runCli(['token:revoke', id!], cwd, env);
      expect(revoked.code).toBe(0);
      expect((await list(orders!)).status).toBe(401);
    } finally {
      await engine.close();
    }
  }, 120_000);

  it('fails with a clear message and a non-zero exit on bad input', async () => {
    const scope = await runCli(['token:create', '--scope', 'root'], cwd, env);
    expect(scope.code).toBe(1);
    expect(scope.stderr).toContain('give one or more --scope among orders, support, admin');
    const name = await runCli(['token:create', '--scope', 'orders', '--name', '$(touch /tmp/x)'], cwd, env);
    expect(name.code).toBe(1);
    expect(name.stderr).toContain('--name must be letters');
    const missing = await runCli(['token:revoke', '999999'], cwd, env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('API token 999999 does not exist');
    const notNumber = await runCli(['token:revoke', '1;2'], cwd, env);
    expect(notNumber.code).toBe(1);
    const unknown = await runCli(['no-such-snippet'], cwd, env);
    expect(unknown.code).not.toBe(0);
    const badCatalog = await runCli(['migrate'], cwd, { ...env, CATALOG_URL: 'postgres://nope' });
    expect(badCatalog.code).toBe(1);
    expect(badCatalog.stderr).toContain('CATALOG_URL');
  }, 180_000);
});
