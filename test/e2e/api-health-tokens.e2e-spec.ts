import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { ApiTokensService } from '@app/auth';
import { Install } from '@app/catalog';
import { startEngine, type RunningEngine } from '../../apps/engine/src/start-engine.js';
import { createTestCatalog, TEST_SECRETS_KEY, testEngineConfig, type TestCatalog } from '../support/catalog.js';
import { cleanEnv, runCli } from '../support/processes-engine.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = async (res: Response): Promise<any> => res.json();
const by = { actor: 'test', via: 'cli' as const };

/** /health tells an anonymous caller only ready or not, cheaply; a token gets the details. */
describe('/health without and with a token (MariaDB)', () => {
  let catalog: TestCatalog;
  let engine: RunningEngine;
  let tokens: ApiTokensService;

  beforeAll(async () => {
    catalog = await createTestCatalog('mariadb', 'api_health');
    engine = await startEngine(testEngineConfig(catalog.url, { ENGINE_ROLES: 'api' }));
    tokens = engine.app.get(ApiTokensService);
    // Orders accepted while no code group had room: more than the details name.
    await engine.app.get(DataSource).getRepository(Install).save(
      Array.from({ length: 25 }, (_, i) => ({
        orderRef: `WAIT-${i}`,
        customerEmail: 'w@example.com',
        license: 'free' as const,
        fsName: `wait${i}`,
        dbName: `wait${i}`,
        dbUser: `wait${i}`,
        dbPasswordEnc: 'x',
        status: 'preparing' as const,
        statusReason: 'waiting for a free code group with room',
      })),
    );
  });
  afterAll(async () => {
    await engine?.close();
    await catalog?.drop();
  });

  /** The SQL the engine sends while `work` runs. */
  const queriesDuring = async (work: () => Promise<unknown>): Promise<string[]> => {
    // TypeORM hands every statement to its logger, whatever the log level: listen there.
    const logger = engine.app.get(DataSource).logger;
    const original = logger.logQuery;
    const seen: string[] = [];
    logger.logQuery = (query, ...rest) => {
      seen.push(query);
      return original.call(logger, query, ...rest);
    };
    try {
      await work();
      return seen;
    } finally {
      logger.logQuery = original;
    }
  };
  const health = (token?: string) => fetch(`${engine.url}/health`, { headers: token ? { authorization: `Bearer ${token}` } : {} });

  it('answers an anonymous caller ready or not and nothing more, without reading the installs', async () => {
    let text = '';
    const queries = await queriesDuring(async () => {
      const res = await health();
      expect(res.status).toBe(200);
      text = await res.text();
    });
    expect(JSON.parse(text)).toEqual({ status: 'ok' });
    expect(queries.filter((q) => /installs|jobs/i.test(q))).toEqual([]);
    expect(queries.length).toBeLessThanOrEqual(3);

    // A burst of probes shares one answer.
    const burst = await queriesDuring(() => Promise.all(Array.from({ length: 20 }, () => health().then((r) => r.text()))));
    expect(burst.length).toBeLessThanOrEqual(3);
  });

  it('gives a support or admin token the details: a count and a bounded sample of the waiting installs', async () => {
    const support = (await tokens.issue('monitoring', ['support'], by)).token;
    let body: { status: string; details: Record<string, Record<string, unknown>> } | undefined;
    const queries = await queriesDuring(async () => {
      const res = await health(support);
      expect(res.status).toBe(200);
      body = await json(res);
    });
    // Degraded (still 200): orders wait for a code group.
    expect(body!.status).toBe('degraded');
    expect(body!.details.installs).toMatchObject({ status: 'degraded', waitingForCodeGroup: 25 });
    expect(String(body!.details.installs!.installs).split('; ')).toHaveLength(20);
    expect(body!.details.catalog).toMatchObject({ status: 'up' });
    expect(body!.details.engine).toEqual({ status: 'up', roles: 'api' });
    const installQueries = queries.filter((q) => /`installs`/.test(q));
    expect(installQueries).toHaveLength(2);
    expect(installQueries.some((q) => /COUNT\(/i.test(q))).toBe(true);
    expect(installQueries.some((q) => /LIMIT 20/i.test(q))).toBe(true);

    const admin = (await tokens.issue('ops', ['admin'], by)).token;
    expect((await health(admin)).status).toBe(200);
  });

  it('refuses a bad, revoked, expired or orders-only token instead of answering anonymously', async () => {
    const orders = await tokens.issue('storefront', ['orders'], by);
    const forbidden = await health(orders.token);
    expect(forbidden.status).toBe(403);
    expect(await json(forbidden)).toMatchObject({ code: 'FORBIDDEN', details: { required: 'support' } });
    expect((await health(`spe_${'A'.repeat(43)}`)).status).toBe(401);
    const revoked = await tokens.issue('old-monitoring', ['support'], by);
    await tokens.revoke(revoked.record.id, by);
    expect((await health(revoked.token)).status).toBe(401);
    const unauthorized = await fetch(`${engine.url}/health`, { headers: { authorization: 'Basic dXNlcjpwYXNz' } });
    expect(unauthorized.status).toBe(401);
  });
});

/** Tokens with an expiry, through the API and the token:create snippet. */
describe('token expiry (MariaDB)', () => {
  let catalog: TestCatalog;
  let engine: RunningEngine;
  let admin: string;
  let cwd: string;

  beforeAll(async () => {
    catalog = await createTestCatalog('mariadb', 'api_token_expiry');
    engine = await startEngine(testEngineConfig(catalog.url, { ENGINE_ROLES: 'api' }));
    admin = (await engine.app.get(ApiTokensService).issue('ops', ['admin'], by)).token;
    cwd = mkdtempSync(join(tmpdir(), 'api-token-expiry-'));
  });
  afterAll(async () => {
    await engine?.close();
    await catalog?.drop();
    rmSync(cwd, { recursive: true, force: true });
  });

  const call = (token: string, method: string, path: string, body?: unknown) =>
    fetch(`${engine.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });

  it('refuses an expiry in the past or not a date, creating nothing', async () => {
    const before = (await json(await call(admin, 'GET', '/v1/tokens'))).length;
    const past = await call(admin, 'POST', '/v1/tokens', { name: 'late', scopes: ['orders'], expiresAt: '2020-01-01T00:00:00Z' });
    expect(past.status).toBe(400);
    expect((await json(past)).details.fields).toEqual([{ field: 'expiresAt', problems: [expect.stringContaining('must lie in the future')] }]);
    const garbage = await call(admin, 'POST', '/v1/tokens', { name: 'late', scopes: ['orders'], expiresAt: 'next tuesday' });
    expect(garbage.status).toBe(400);
    expect((await json(garbage)).details.fields.map((f: { field: string }) => f.field)).toEqual(['expiresAt']);
    expect((await json(await call(admin, 'GET', '/v1/tokens'))).length).toBe(before);
  });

  it('lists a token with its expiry and answers 401 once it has passed, like a revoked one', async () => {
    // Whole seconds: the catalog keeps datetimes to the second.
    const expiresAt = new Date(Math.ceil((Date.now() + 3_000) / 1000) * 1000 + 1000);
    const created = await call(admin, 'POST', '/v1/tokens', { name: 'short-lived', scopes: ['admin'], expiresAt: expiresAt.toISOString() });
    expect(created.status).toBe(201);
    const issued = await json(created);
    expect(issued.expiresAt).toBe(expiresAt.toISOString());
    const listed = (await json(await call(admin, 'GET', '/v1/tokens'))).find((t: { id: number }) => t.id === issued.id);
    expect(listed).toMatchObject({ name: 'short-lived', expiresAt: expiresAt.toISOString(), revokedAt: null });
    expect((await call(issued.token, 'GET', '/v1/tokens')).status).toBe(200);

    await new Promise((r) => setTimeout(r, expiresAt.getTime() - Date.now() + 200));
    const expired = await call(issued.token, 'GET', '/v1/tokens');
    expect(expired.status).toBe(401);
    expect(await json(expired)).toMatchObject({ code: 'UNAUTHENTICATED', message: expect.stringContaining('expired') });
  });

  it('token:create --expires-in 30d makes a token that expires in 30 days; a bad duration creates nothing', async () => {
    const env = cleanEnv({ CATALOG_URL: catalog.url, SECRETS_KEY: TEST_SECRETS_KEY, LOG_LEVEL: 'warn' });
    const made = await runCli(['token:create', '--scope', 'orders', '--name', 'month', '--expires-in', '30d'], cwd, env);
    expect(made.code).toBe(0);
    const expiry = /expiring (\S+)/.exec(made.stdout)?.[1];
    expect(Math.abs(new Date(expiry!).getTime() - (Date.now() + 30 * 86_400_000))).toBeLessThan(60_000);
    const listed = (await json(await call(admin, 'GET', '/v1/tokens'))).find((t: { name: string }) => t.name === 'month');
    expect(Math.abs(new Date(listed.expiresAt).getTime() - new Date(expiry!).getTime())).toBeLessThan(1_000);

    const before = (await json(await call(admin, 'GET', '/v1/tokens'))).length;
    for (const bad of ['30', '0d', 'forever', '4000d']) {
      const res = await runCli(['token:create', '--scope', 'orders', '--name', 'bad', '--expires-in', bad], cwd, env);
      expect({ bad, code: res.code }).toEqual({ bad, code: 1 });
      expect(res.stderr).toContain('--expires-in must be');
    }
    expect((await json(await call(admin, 'GET', '/v1/tokens'))).length).toBe(before);
  });
});

/**
 * The embedded default prints a new admin token at each start and revokes
 * only the one it issued the start before: a token an operator created under
 * the same name through the API keeps working.
 */
describe('the embedded admin token (SQLite)', () => {
  let catalog: TestCatalog;

  beforeAll(async () => {
    catalog = await createTestCatalog('sqlite', 'api_embedded_token');
  });
  afterAll(async () => {
    await catalog?.drop();
  });

  it('revokes only the token the previous start issued, and allows local servers', async () => {
    const config = testEngineConfig(catalog.url, { ENGINE_ROLES: 'api', ALLOW_LOCAL_TRANSPORT: 'false' });
    expect(config.embedded).toBe(true);
    const first = await startEngine(config);
    let firstToken: string;
    let operatorToken: string;
    try {
      firstToken = first.adminToken!;
      const created = await fetch(`${first.url}/v1/tokens`, {
        method: 'POST',
        headers: { authorization: `Bearer ${firstToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'embedded-admin', scopes: ['admin'] }),
      });
      expect(created.status).toBe(201);
      operatorToken = (await json(created)).token;
    } finally {
      await first.close();
    }

    const again = await startEngine(config);
    try {
      const tokensWith = (token: string) => fetch(`${again.url}/v1/tokens`, { headers: { authorization: `Bearer ${token}` } });
      expect((await tokensWith(firstToken)).status).toBe(401);
      expect((await tokensWith(operatorToken)).status).toBe(200);
      const listed = await json(await tokensWith(again.adminToken!));
      const named = listed.filter((t: { name: string }) => t.name === 'embedded-admin');
      expect(named.map((t: { revokedAt: string | null }) => t.revokedAt === null)).toEqual([false, true, true]);

      // The embedded default's inventory may hold local servers without ALLOW_LOCAL_TRANSPORT.
      const dir = mkdtempSync(join(tmpdir(), 'api-embedded-'));
      try {
        const root = (r: string) => join(dir, r);
        const local = await fetch(`${again.url}/v1/servers`, {
          method: 'POST',
          headers: { authorization: `Bearer ${again.adminToken}`, 'content-type': 'application/json' },
          body: JSON.stringify({ hostname: 'second-local.example.net', roles: ['handler'], transport: 'local', homeRoot: root('home'), sharedCodeRoot: root('shared'), nginxConfDir: root('nginx'), cronDir: root('cron.d'), certsRoot: root('certs') }),
        });
        expect(local.status).toBe(201);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    } finally {
      await again.close();
    }
  });
});
