import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { ApiTokensService } from '@app/auth';
import { AuditEvent, DispatcherConfig, Install, Job, Server, ServerIp, SharedCodeGroup, type NewServer } from '@app/catalog';
import { SAMPLE_MANIFEST } from '@app/codebases';
import { PrepareService, type CreateInstallDto } from '@app/installs';
import { startEngine, type RunningEngine } from '../../apps/engine/src/start-engine.js';
import { createTestCatalog, TEST_SECRETS_KEY, testEngineConfig, type TestCatalog } from '../support/catalog.js';
import { cleanEnv, runCli } from '../support/processes-engine.js';
import { testServer } from '../support/server-roots.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

/**
 * Rewrite rules' dry run and snippet: a live paid install on two dispatchers
 * (catalog rows as prepare makes them; the vhosts come from the real
 * renderer over the catalog, so no server is needed to plan). The plan
 * changes nothing: no rules stored, no audit event, no rebuild asked for.
 * Rules going live on real nginx is installs.e2e-spec's part.
 */
describe('install rewrites: dry run over HTTP and install:rewrites (MariaDB)', () => {
  let catalog: TestCatalog;
  let engine: RunningEngine;
  let ds: DataSource;
  let support: string;
  let orders: string;
  let installId: number;
  let fsName: string;
  const scratch = mkdtempSync(join(tmpdir(), 'rewrites-'));
  let env: NodeJS.ProcessEnv;

  const rules = [
    { match: 'exact', from: '/sale', to: '/category/sale', code: 302 },
    { match: 'prefix', from: '/old-shop/', to: 'https://www.rewrites-shop.example/', code: 301 },
  ];
  const put = async (body: unknown, token = support, id = installId): Promise<{ status: number; body: Json }> => {
    const res = await fetch(`${engine.url}/v1/installs/${id}/rewrites`, { method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, body: await res.json() };
  };
  /** Everything a real change touches: the stored rules, the audit log, the rebuilds asked for. */
  const state = async () => ({
    rules: (await ds.getRepository(Install).findOneByOrFail({ id: installId })).customRewrites,
    audit: await ds.getRepository(AuditEvent).count({ where: { action: 'install.rewrites' } }),
    jobs: await ds.getRepository(Job).count(),
    wanted: (await ds.getRepository(DispatcherConfig).find({ order: { serverId: 'ASC' } })).map((c) => c.wantedGeneration),
  });
  const file = (name: string, content: string) => {
    const path = join(scratch, name);
    writeFileSync(path, content);
    return path;
  };

  beforeAll(async () => {
    catalog = await createTestCatalog('mariadb', 'install_rewrites');
    engine = await startEngine(testEngineConfig(catalog.url, { ENGINE_ROLES: 'api' }));
    ds = engine.app.get(DataSource);
    const tokens = engine.app.get(ApiTokensService);
    support = (await tokens.issue('rewrites-support', ['support'], { actor: 'test', via: 'cli' })).token;
    orders = (await tokens.issue('rewrites-orders', ['orders'], { actor: 'test', via: 'cli' })).token;
    const server = (hostname: string, roles: NewServer['roles']) => ds.getRepository(Server).save(testServer(join(scratch, hostname), hostname, roles, null));
    const d1 = await server('rw1.example.net', ['dispatcher', 'handler']);
    const d2 = await server('rw2.example.net', ['dispatcher', 'handler']);
    await server('rwdb.example.net', ['database']);
    for (const [s, ip] of [[d1, '127.0.115.11'], [d2, '127.0.115.12']] as const) await ds.getRepository(ServerIp).save({ serverId: s.id, ip, kind: 'dedicated', failoverGroup: null, activeServerId: null });
    await ds.getRepository(SharedCodeGroup).save({
      name: 'paid-rw', tier: 'paid', repoUrl: '/srv/repo', revision: 'abc', path: join(scratch, 'rw1.example.net/srv/shared_codes/paid-rw'), masterServerId: d1.id,
      installLimit: 10, installCount: 0, pinned: false, manifest: JSON.parse(JSON.stringify(SAMPLE_MANIFEST)), state: 'ready',
    });
    const { install } = await engine.app.get(PrepareService).prepare({ orderRef: 'RW-1', customerEmail: 'owner@example.com', license: 'paid', sites: [{ hostname: 'www.rewrites-shop.example' }] } as CreateInstallDto);
    await ds.getRepository(Install).update({ id: install.id }, { status: 'live' });
    installId = install.id;
    fsName = install.fsName;
    env = cleanEnv({ CATALOG_URL: catalog.url, SECRETS_KEY: TEST_SECRETS_KEY, LOG_LEVEL: 'warn', USER: 'rw-operator' });
  });
  afterAll(async () => {
    await engine?.close();
    await catalog?.drop();
    rmSync(scratch, { recursive: true, force: true });
  });

  it("dry run: each dispatcher's vhost before and after as a unified diff; nothing stored, audited or rebuilt", async () => {
    const before = await state();
    const res = await put({ rules, dryRun: true });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ installId, dryRun: true, changed: true, before: [], after: rules });
    expect(res.body.servers.map((s: Json) => [s.server, s.file])).toEqual([
      ['rw1.example.net', `shops/${fsName}.conf`],
      ['rw2.example.net', `shops/${fsName}.conf`],
    ]);
    for (const server of res.body.servers) {
      const lines = server.diff.split('\n');
      expect(lines[0]).toBe(`--- a/shops/${fsName}.conf (${server.server})`);
      expect(lines[1]).toBe(`+++ b/shops/${fsName}.conf (${server.server})`);
      expect(lines[2]).toMatch(/^@@ -\d+,\d+ \+\d+,\d+ @@$/);
      const added = lines.filter((l: string) => l.startsWith('+') && !l.startsWith('+++'));
      const removed = lines.filter((l: string) => l.startsWith('-') && !l.startsWith('---'));
      expect(removed).toEqual([]);
      // One server block per site (http and https): each gets both rules.
      expect(added.filter((l: string) => l.includes('location = /sale { return 302 /category/sale; }')).length).toBeGreaterThan(0);
      expect(added.filter((l: string) => l.includes('location ^~ /old-shop/ { return 301 https://www.rewrites-shop.example/; }')).length).toBeGreaterThan(0);
    }
    expect(await state()).toEqual(before);
    // The orders scope may not plan either; a refused rule is refused by the plan as by the change.
    expect((await put({ rules, dryRun: true }, orders)).status).toBe(403);
    const refused = await put({ rules: [{ match: 'exact', from: '/index.php', to: '/b', code: 301 }], dryRun: true });
    expect(refused).toMatchObject({ status: 400, body: { code: 'REWRITE_REFUSED' } });
    expect(refused.body.message).toMatch(/another location has that path/);
    expect((await put({ rules, dryRun: 'yes' })).status).toBe(400);
    expect((await put({ rules, dryRun: true }, support, 999_999)).status).toBe(404);
    expect(await state()).toEqual(before);
  });

  it('a real change: stored, audited with before and after, rebuild asked for; the same rules again change nothing', async () => {
    const before = await state();
    const res = await put({ rules });
    expect(res).toEqual({ status: 200, body: rules });
    const after = await state();
    expect(after.rules).toEqual(rules);
    expect(after.audit).toBe(before.audit + 1);
    // Both dispatchers asked for a rebuild (a job each; no worker here to run them).
    expect(after.wanted).toHaveLength(2);
    after.wanted.forEach((w, i) => expect(w).toBeGreaterThan(before.wanted[i] ?? 0));
    expect(await ds.getRepository(Job).count({ where: { kind: 'nginx.rebuild' } })).toBe(2);
    const event = (await ds.getRepository(AuditEvent).find({ where: { action: 'install.rewrites', targetId: String(installId) }, order: { id: 'DESC' }, take: 1 }))[0]!;
    expect(event).toMatchObject({ actor: 'token:rewrites-support', via: 'api', targetType: 'install', details: { before: [], after: rules } });

    expect(await put({ rules })).toEqual({ status: 200, body: rules });
    expect(await state()).toEqual(after);

    // Planned from the stored rules: one changed, one removed.
    const next = [{ ...rules[0], code: 301 }];
    const plan = await put({ rules: next, dryRun: true });
    expect(plan.body).toMatchObject({ changed: true, before: rules, after: next });
    const diff: string = plan.body.servers[0].diff;
    expect(diff).toMatch(/^-\s*location = \/sale \{ return 302 \/category\/sale; \}$/m);
    expect(diff).toMatch(/^\+\s*location = \/sale \{ return 301 \/category\/sale; \}$/m);
    expect(diff).toMatch(/^-\s*location \^~ \/old-shop\/ /m);
    const same = await put({ rules, dryRun: true });
    expect(same.body).toMatchObject({ changed: false });
    expect(same.body.servers.map((s: Json) => s.diff)).toEqual(['', '']);
    expect(await state()).toEqual(after);
  });

  it('install:rewrites --dry-run prints the diff and changes nothing; without it stores and audits as the CLI operator', async () => {
    const next = [{ match: 'exact', from: '/winter', to: '/category/winter', code: 301 }];
    const path = file('rules.json', JSON.stringify({ rules: next }));
    const before = await state();
    const dry = await runCli(['install:rewrites', '--id', String(installId), '--file', path, '--dry-run'], scratch, env);
    expect(dry).toMatchObject({ code: 0, stderr: '' });
    expect(dry.stdout).toContain(`dry run: install ${installId} has 2 rule(s), would have 1; nothing changed`);
    expect(dry.stdout).toContain(`--- a/shops/${fsName}.conf (rw1.example.net)`);
    expect(dry.stdout).toContain(`+++ b/shops/${fsName}.conf (rw2.example.net)`);
    expect(dry.stdout).toMatch(/^\+\s*location = \/winter \{ return 301 \/category\/winter; \}$/m);
    expect(dry.stdout).toMatch(/^-\s*location = \/sale /m);
    expect(await state()).toEqual(before);

    const real = await runCli(['install:rewrites', '--id', String(installId), '--file', file('array.json', JSON.stringify(next))], scratch, env);
    expect(real).toMatchObject({ code: 0, stderr: '' });
    expect(real.stdout.trim()).toBe(`install ${installId}: 1 rule(s) stored, audited; nginx rebuild requested on its dispatchers`);
    const after = await state();
    expect(after.rules).toEqual(next);
    expect(after.audit).toBe(before.audit + 1);
    after.wanted.forEach((w, i) => expect(w).toBeGreaterThan(before.wanted[i]!));
    const event = (await ds.getRepository(AuditEvent).find({ where: { action: 'install.rewrites', targetId: String(installId) }, order: { id: 'DESC' }, take: 1 }))[0]!;
    expect(event).toMatchObject({ actor: 'cli:rw-operator', via: 'cli', details: { before: rules, after: next } });
    const again = await runCli(['install:rewrites', '--id', String(installId), '--file', path], scratch, env);
    expect(again.stdout.trim()).toBe(`install ${installId}: the same 1 rule(s) were stored already; nothing changed`);
    expect(await state()).toEqual(after);
  });

  it('install:rewrites refuses bad input with exit 1 and changes nothing', async () => {
    const before = await state();
    const cases: [string[], RegExp][] = [
      [['--file', file('ok.json', '[]')], /--id <install id> is required/],
      [['--id', String(installId)], /--file <rules\.json> is required/],
      [['--id', 'x', '--file', file('ok2.json', '[]')], /--id is an install id/],
      [['--id', String(installId), '--file', join(scratch, 'missing.json')], /cannot read --file .*missing\.json: ENOENT/],
      [['--id', String(installId), '--file', scratch], /is not a file/],
      [['--id', String(installId), '--file', file('bad.json', '{"rules": [')], /is not JSON/],
      [['--id', String(installId), '--file', file('obj.json', '{"rule": []}')], /must hold a JSON array of rules/],
      [['--id', String(installId), '--file', file('rule.json', '[{"match":"regex","from":"/(.*)","to":"/b$request_uri","code":200}]')], /match must be one of.*from must be a path.*to must be a local path.*code must be one of/],
      [['--id', String(installId), '--file', file('taken.json', '[{"match":"exact","from":"/index.php","to":"/b","code":301}]'), '--dry-run'], /REWRITE_REFUSED: .*another location has that path/],
      [['--id', '999999', '--file', file('ok3.json', '[]')], /NOT_FOUND: Install 999999 does not exist/],
    ];
    for (const [args, message] of cases) {
      const res = await runCli(['install:rewrites', ...args], scratch, env);
      expect([args, res.code]).toEqual([args, 1]);
      expect(res.stderr).toMatch(message);
    }
    expect(await state()).toEqual(before);
  });
});
