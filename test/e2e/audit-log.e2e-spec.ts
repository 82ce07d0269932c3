import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { ApiTokensService } from '@app/auth';
import { AuditEvent, AuditEventRepository } from '@app/catalog';
import { startEngine, type RunningEngine } from '../../apps/engine/src/start-engine.js';
import { createTestCatalog, TEST_SECRETS_KEY, testEngineConfig, type TestCatalog } from '../support/catalog.js';
import { cleanEnv, runCli } from '../support/processes-engine.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

/**
 * The audit log readable: GET /v1/audit over HTTP with real tokens, and the
 * audit:list snippet (built CLI) on the same MariaDB catalog.
 */
describe('audit log: GET /v1/audit and audit:list (MariaDB)', () => {
  let catalog: TestCatalog;
  let engine: RunningEngine;
  let ds: DataSource;
  let cwd: string;
  let env: NodeJS.ProcessEnv;
  const token: Record<'support' | 'orders' | 'admin', string> = { support: '', orders: '', admin: '' };
  const ids: Record<string, number> = {};

  const get = async (query: string, as: string | null = token.support): Promise<{ status: number; body: Json }> => {
    const res = await fetch(`${engine.url}/v1/audit${query}`, { headers: as ? { authorization: `Bearer ${as}` } : {} });
    return { status: res.status, body: await res.json() };
  };
  const count = () => ds.getRepository(AuditEvent).count();

  beforeAll(async () => {
    catalog = await createTestCatalog('mariadb', 'audit_log');
    engine = await startEngine(testEngineConfig(catalog.url, { ENGINE_ROLES: 'api' }));
    ds = engine.app.get(DataSource);
    const tokens = engine.app.get(ApiTokensService);
    for (const scope of ['support', 'orders', 'admin'] as const) token[scope] = (await tokens.issue(`audit-${scope}`, [scope], { actor: 'test', via: 'cli' })).token;
    // Events: two installs, two actors, known times (set after the insert, as the column defaults to now).
    const audit = engine.app.get(AuditEventRepository);
    const events: [string, string, string, string | null, string | null, Record<string, unknown> | null, string][] = [
      ['old', 'token:desk', 'install.rewrites', 'install', '5', { before: [], after: [{ from: '/a' }] }, '2026-11-01T10:00:00Z'],
      ['mid', 'cli:alice', 'install.credentials', 'install', '5', null, '2026-11-15T10:00:00Z'],
      ['other', 'token:desk', 'install.rewrites', 'install', '6', { before: [], after: [] }, '2026-11-20T10:00:00Z'],
      ['server', 'cli:alice', 'server.state', 'server', '5', { state: 'draining' }, '2026-11-25T10:00:00Z'],
      ['new', 'token:desk', 'install_x.odd', 'install', '5', null, '2026-11-30T10:00:00Z'],
    ];
    for (const [key, actor, action, targetType, targetId, details, at] of events) {
      await audit.record({ actor, via: actor.startsWith('cli') ? 'cli' : 'api', action, targetType, targetId, details });
      const row = (await ds.getRepository(AuditEvent).find({ order: { id: 'DESC' }, take: 1 }))[0]!;
      await ds.getRepository(AuditEvent).update({ id: row.id }, { createdAt: new Date(at) });
      ids[key] = row.id;
    }
    cwd = mkdtempSync(join(tmpdir(), 'audit-cli-'));
    env = cleanEnv({ CATALOG_URL: catalog.url, SECRETS_KEY: TEST_SECRETS_KEY, LOG_LEVEL: 'warn' });
  });
  afterAll(async () => {
    await engine?.close();
    await catalog?.drop();
    if (cwd) rmSync(cwd, { recursive: true, force: true });
  });

  it('needs a support (or admin) token', async () => {
    expect((await get('', null)).status).toBe(401);
    expect((await get('', token.orders)).status).toBe(403);
    expect((await get('', token.support)).status).toBe(200);
    expect((await get('', token.admin)).status).toBe(200);
  });

  it('lists newest first, every field, token issues included', async () => {
    const { body } = await get('');
    expect(body.nextBeforeId).toBeNull();
    expect(body.events.map((e: Json) => e.id)).toEqual([...body.events.map((e: Json) => e.id)].sort((a: number, b: number) => b - a));
    expect(body.events.find((e: Json) => e.id === ids.old)).toEqual({
      id: ids.old, at: '2026-11-01T10:00:00.000Z', actor: 'token:desk', via: 'api', action: 'install.rewrites', targetType: 'install', targetId: '5', details: { before: [], after: [{ from: '/a' }] },
    });
    expect(body.events.filter((e: Json) => e.action === 'token.create')).toHaveLength(3);
    // The token itself is never in the log.
    expect(JSON.stringify(body)).not.toContain(token.support);
  });

  it('filters by install (its target only), actor, action (exact or prefix*) and time, combined', async () => {
    const idsOf = async (query: string) => (await get(query)).body.events.map((e: Json) => e.id);
    expect(await idsOf('?installId=5')).toEqual([ids.new, ids.mid, ids.old]);
    expect(await idsOf('?actor=cli:alice')).toEqual([ids.server, ids.mid]);
    expect(await idsOf('?action=install.rewrites')).toEqual([ids.other, ids.old]);
    expect(await idsOf('?action=install.*')).toEqual([ids.other, ids.mid, ids.old]);
    // `_` is no wildcard in a prefix.
    expect(await idsOf('?action=install_*')).toEqual([ids.new]);
    expect(await idsOf('?since=2026-11-15T10:00:00Z&until=2026-11-25T10:00:00Z')).toEqual([ids.other, ids.mid]);
    expect(await idsOf('?installId=5&actor=token:desk&since=2026-11-02')).toEqual([ids.new]);
    expect(await idsOf('?installId=999')).toEqual([]);
  });

  it('pages by id: limit, nextBeforeId, beforeId', async () => {
    const first = await get('?installId=5&limit=2');
    expect(first.body.events.map((e: Json) => e.id)).toEqual([ids.new, ids.mid]);
    expect(first.body.nextBeforeId).toBe(ids.mid);
    const second = await get(`?installId=5&limit=2&beforeId=${first.body.nextBeforeId}`);
    expect(second.body.events.map((e: Json) => e.id)).toEqual([ids.old]);
    expect(second.body.nextBeforeId).toBeNull();
  });

  it('answers 400 naming the problem for bad input, and changes nothing', async () => {
    const before = await count();
    const bad: [string, string][] = [
      ['?limit=0', 'limit'],
      ['?limit=1001', 'limit'],
      ['?limit=abc', 'limit'],
      ['?installId=-1', 'installId'],
      ['?installId=5%20OR%201=1', 'installId'],
      ['?beforeId=0', 'beforeId'],
      ['?since=yesterday', 'since must be an ISO 8601'],
      ['?until=2026-13-45', 'until must be an ISO 8601'],
      ['?since=2026-11-20&until=2026-11-10', 'until: must be after since'],
      ["?action=install'%20OR%20'1'='1", 'action must be'],
      ['?action=%25', 'action must be'],
      ['?actor=a%20b', 'actor must be'],
      ['?actor=a&actor=b', 'actor'],
      ['?target=install', 'target'],
      [`?actor=${'x'.repeat(200)}`, 'actor'],
    ];
    for (const [query, problem] of bad) {
      const res = await get(query);
      expect([query, res.status, res.body.code]).toEqual([query, 400, 'VALIDATION_FAILED']);
      expect(res.body.message).toContain(problem);
    }
    expect(await count()).toBe(before);
  });

  it('is documented in OpenAPI (and so is the rewrites dry run)', async () => {
    const doc: Json = await (await fetch(`${engine.url}/docs-json`)).json();
    const audit = doc.paths['/v1/audit'].get;
    expect(audit.parameters.map((p: Json) => p.name).sort()).toEqual(['action', 'actor', 'beforeId', 'installId', 'limit', 'since', 'until']);
    expect(audit.responses['200'].content['application/json'].schema.$ref).toBe('#/components/schemas/AuditPageView');
    const rewrites = doc.paths['/v1/installs/{id}/rewrites'].put;
    expect(rewrites.responses['200'].content['application/json'].schema.oneOf).toHaveLength(2);
    expect(Object.keys(doc.components.schemas.SetRewritesDto.properties)).toEqual(['rules', 'dryRun']);
    expect(Object.keys(doc.components.schemas.RewritesPlanView.properties)).toEqual(['installId', 'dryRun', 'changed', 'before', 'after', 'servers']);
  });

  it('audit:list: the same filters as flags, a table or --json, bad input exit 1', async () => {
    const listed = await runCli(['audit:list', '--install-id', '5', '--action', 'install.*'], cwd, env);
    expect(listed).toMatchObject({ code: 0, stderr: '' });
    const lines = listed.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^id\s+at\s+actor\s+via\s+action\s+target\s+details$/);
    expect(lines.slice(1).map((l) => Number(l.split(/\s+/)[0]))).toEqual([ids.mid, ids.old]);
    expect(lines[2]).toMatch(new RegExp(`^${ids.old}\\s+2026-11-01T10:00:00.000Z\\s+token:desk\\s+api\\s+install.rewrites\\s+install:5\\s+\\{"before":\\[\\],"after":\\[\\{"from":"/a"\\}\\]\\}$`));

    const json = await runCli(['audit:list', '--actor', 'cli:alice', '--limit', '1', '--json'], cwd, env);
    expect(json.code).toBe(0);
    const page = JSON.parse(json.stdout);
    expect(page).toEqual((await get('?actor=cli:alice&limit=1')).body);
    expect(page.nextBeforeId).toBe(ids.server);

    const paged = await runCli(['audit:list', '--actor', 'cli:alice', '--limit', '1'], cwd, env);
    expect(paged.stdout.trim().split('\n').pop()).toBe(`more: --before-id ${ids.server}`);
    const next = await runCli(['audit:list', '--actor', 'cli:alice', '--before-id', String(ids.server), '--since', '2026-11-01', '--until', '2026-12-01'], cwd, env);
    expect(next.stdout.trim().split('\n').slice(1).map((l) => Number(l.split(/\s+/)[0]))).toEqual([ids.mid]);

    const before = await count();
    for (const args of [['--limit', '5000'], ['--since', 'last week'], ['--install-id', 'x'], ['--action', 'DROP TABLE']]) {
      const res = await runCli(['audit:list', ...args], cwd, env);
      expect([args, res.code]).toEqual([args, 1]);
      expect(res.stderr).toMatch(/^error: The request is invalid: /);
    }
    expect(await count()).toBe(before);
  }, 120_000);
});
