import { randomUUID } from 'node:crypto';
import { ApiTokensService } from '@app/auth';
import { DataSource } from 'typeorm';
import { ApiTokenRepository, AuditEventRepository } from '@app/catalog';
import { startEngine, type RunningEngine } from '../../apps/engine/src/start-engine.js';
import { createTestCatalog, testEngineConfig, type TestCatalog } from '../support/catalog.js';

// Response bodies are checked field by field; their shape is what is under test.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = async (res: Response): Promise<any> => res.json();

/** The HTTP skeleton end to end: a real engine on a real MariaDB catalog, over real HTTP. */
describe('HTTP API on a MariaDB catalog', () => {
  let catalog: TestCatalog;
  let engine: RunningEngine;
  let base: string;
  let tokens: ApiTokensService;
  const by = { actor: 'test', via: 'cli' as const };

  beforeAll(async () => {
    catalog = await createTestCatalog('mariadb', 'http');
    engine = await startEngine(testEngineConfig(catalog.url));
    base = engine.url!;
    tokens = engine.app.get(ApiTokensService);
  });
  afterAll(async () => {
    await engine?.close();
    await catalog?.drop();
  });

  const get = (path: string, token?: string, headers: Record<string, string> = {}) =>
    fetch(base + path, { headers: { ...headers, ...(token ? { authorization: `Bearer ${token}` } : {}) } });
  const post = (path: string, token: string, body: string) =>
    fetch(base + path, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body,
    });

  it('is ready: the catalog answers and the migrations have run (details only with a token)', async () => {
    const res = await get('/health');
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({ status: 'ok' });

    const support = await tokens.issue('monitoring', ['support'], by);
    const detailed = await get('/health', support.token);
    expect(detailed.status).toBe(200);
    const body = await json(detailed);
    expect(body.status).toBe('ok');
    expect(body.info.catalog.status).toBe('up');
    expect(body.info.migrations).toMatchObject({ status: 'up', driver: 'mariadb' });
    expect(body.info.engine.roles).toBe('api,worker,cron');
    expect((await get('/health/live')).status).toBe(200);
  });

  it('serves the OpenAPI page and document without a token', async () => {
    const page = await get('/docs');
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('swagger');
    const doc = await json(await get('/docs-json'));
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/v1/tokens', '/v1/tokens/{id}', '/health']));
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
  });

  it('refuses calls without a valid token (401) and out of scope (403)', async () => {
    const none = await get('/v1/tokens');
    expect(none.status).toBe(401);
    expect(await json(none)).toMatchObject({ code: 'UNAUTHENTICATED' });

    expect((await get('/v1/tokens', 'not-a-token')).status).toBe(401);
    expect((await get('/v1/tokens', `spe_${'A'.repeat(43)}`)).status).toBe(401);
    expect((await get('/v1/tokens', undefined, { authorization: 'Basic dXNlcjpwYXNz' })).status).toBe(401);

    const orders = await tokens.issue('storefront', ['orders'], by);
    const forbidden = await get('/v1/tokens', orders.token);
    expect(forbidden.status).toBe(403);
    expect(await json(forbidden)).toMatchObject({ code: 'FORBIDDEN', details: { required: 'admin', granted: ['orders'] } });

    const admin = await tokens.issue('ops', ['admin'], by);
    const ok = await get('/v1/tokens', admin.token);
    expect(ok.status).toBe(200);
    const listed = await json(ok);
    expect(listed.map((t: { name: string }) => t.name)).toEqual(expect.arrayContaining(['storefront', 'ops']));
    expect(JSON.stringify(listed)).not.toContain(admin.token);
    expect(JSON.stringify(listed)).not.toMatch(/tokenHash|[0-9a-f]{64}/);

    await tokens.revoke(admin.record.id, by);
    expect((await get('/v1/tokens', admin.token)).status).toBe(401);
  });

  it('creates a token through the API, shown once and audited', async () => {
    const admin = await tokens.issue('ops-create', ['admin'], by);
    const res = await post('/v1/tokens', admin.token, JSON.stringify({ name: 'support-desk', scopes: ['support'] }));
    expect(res.status).toBe(201);
    const created = await json(res);
    expect(created).toMatchObject({ name: 'support-desk', scopes: ['support'], revokedAt: null });
    expect((await get('/v1/tokens', created.token)).status).toBe(403);
    const events = await engine.app.get(AuditEventRepository).latest(5);
    expect(events.find((e) => e.action === 'token.create' && e.targetId === String(created.id))).toMatchObject({
      actor: 'token:ops-create',
      via: 'api',
    });
  });

  it('answers bad input with a precise 400 and changes nothing', async () => {
    const admin = await tokens.issue('ops-bad-input', ['admin'], by);
    const repo = engine.app.get(ApiTokenRepository);
    const before = (await repo.list()).length;

    const unknown = await post('/v1/tokens', admin.token, JSON.stringify({ name: 'x', scopes: ['orders'], isAdmin: true }));
    expect(unknown.status).toBe(400);
    const body = await json(unknown);
    expect(body.code).toBe('VALIDATION_FAILED');
    expect(body.details.fields).toEqual([{ field: 'isAdmin', problems: ['property isAdmin should not exist'] }]);

    // Names the libraries drop before the whitelist sees them are unknown members all the same.
    for (const key of ['__proto__', 'constructor', 'prototype']) {
      const sneaky = await post('/v1/tokens', admin.token, `{"name":"sneaky","scopes":["orders"],"${key}":{"isAdmin":true}}`);
      expect({ key, status: sneaky.status }).toEqual({ key, status: 400 });
      expect((await json(sneaky)).details.fields).toEqual([{ field: key, problems: [`property ${key} should not exist`] }]);
    }

    const bad = await post('/v1/tokens', admin.token, JSON.stringify({ name: '; rm -rf /', scopes: ['root'] }));
    expect(bad.status).toBe(400);
    const fields = (await json(bad)).details.fields.map((f: { field: string }) => f.field).sort();
    expect(fields).toEqual(['name', 'scopes']);

    const broken = await post('/v1/tokens', admin.token, '{"name": ');
    expect(broken.status).toBe(400);

    const huge = await post('/v1/tokens', admin.token, JSON.stringify({ name: 'x'.repeat(300_000), scopes: ['orders'] }));
    expect(huge.status).toBe(413);
    expect(await json(huge)).toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });

    expect((await repo.list()).length).toBe(before);
  });

  it('echoes a sane request id, or makes one, and names it in errors', async () => {
    const mine = await get('/health/live', undefined, { 'x-request-id': 'order-42.retry_1' });
    expect(mine.headers.get('x-request-id')).toBe('order-42.retry_1');
    const hostile = await get('/health/live', undefined, { 'x-request-id': 'a b\tc;$(id)' });
    expect(hostile.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const id = randomUUID();
    const error = await get('/v1/tokens', undefined, { 'x-request-id': id });
    expect((await json(error)).requestId).toBe(id);
  });

  it('gives unknown routes the same error shape', async () => {
    const res = await get('/v1/nothing-here');
    expect(res.status).toBe(404);
    expect(await json(res)).toMatchObject({ code: 'NOT_FOUND' });
  });
});

describe('engine roles and readiness', () => {
  const by = { actor: 'test', via: 'cli' as const };
  it('reports pending migrations as not ready (503) when MIGRATIONS_RUN=false, naming them only to a token', async () => {
    const catalog = await createTestCatalog('mariadb', 'unmigrated');
    const engine = await startEngine(testEngineConfig(catalog.url, { MIGRATIONS_RUN: 'false' }));
    try {
      const res = await fetch(`${engine.url}/health`);
      expect(res.status).toBe(503);
      expect(await json(res)).toEqual({ status: 'error' });
    } finally {
      await engine.close();
      await catalog.drop();
    }

    // A catalog whose tables exist but that misses one migration: a token gets the details.
    const partial = await createTestCatalog('mariadb', 'partly_migrated');
    const migrator = await startEngine(testEngineConfig(partial.url, { ENGINE_ROLES: 'worker' }));
    const support = (await migrator.app.get(ApiTokensService).issue('monitoring', ['support'], by)).token;
    await migrator.app.get(DataSource).query(`DELETE FROM migrations WHERE name LIKE 'FtpAccounts%'`);
    await migrator.close();
    const unready = await startEngine(testEngineConfig(partial.url, { MIGRATIONS_RUN: 'false', ENGINE_ROLES: 'api' }));
    try {
      const anonymous = await fetch(`${unready.url}/health`);
      expect(anonymous.status).toBe(503);
      const text = await anonymous.text();
      expect(JSON.parse(text)).toEqual({ status: 'error' });
      expect(text).not.toContain('FtpAccounts');
      const detailed = await fetch(`${unready.url}/health`, { headers: { authorization: `Bearer ${support}` } });
      expect(detailed.status).toBe(503);
      const body = await json(detailed);
      expect(body.code).toBe('UNAVAILABLE');
      expect(body.details.error.migrations.status).toBe('down');
      expect(JSON.stringify(body.details.error.migrations)).toContain('FtpAccounts');
    } finally {
      await unready.close();
      await partial.drop();
    }
  });

  it('serves no HTTP without the api role', async () => {
    const catalog = await createTestCatalog('mariadb', 'worker');
    const engine = await startEngine(testEngineConfig(catalog.url, { ENGINE_ROLES: 'worker,cron' }));
    try {
      expect(engine.url).toBeNull();
      // The worker instance still migrated the shared catalog at start.
      const again = await startEngine(testEngineConfig(catalog.url, { ENGINE_ROLES: 'api', MIGRATIONS_RUN: 'false' }));
      try {
        expect((await fetch(`${again.url}/health`)).status).toBe(200);
      } finally {
        await again.close();
      }
    } finally {
      await engine.close();
      await catalog.drop();
    }
  });
});
