import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { ApiTokensService } from '@app/auth';
import { CodeUpdate, CodeUpdateItem, DatabaseUpdate, Install, Job, Server } from '@app/catalog';
import { startEngine, type RunningEngine } from '../../apps/engine/src/start-engine.js';
import { createTestCatalog, TEST_SECRETS_KEY, testEngineConfig, type TestCatalog } from '../support/catalog.js';
import { cleanEnv, runCli } from '../support/processes-engine.js';
import { testServer } from '../support/server-roots.js';
import { codeGroupFor } from '../support/web-installs.js';

const json = async (res: Response): Promise<any> => res.json();

/**
 * SQL snippets over HTTP and through the built CLI, on MariaDB, without a
 * worker: what is refused changes nothing; what is accepted is one update,
 * its items and its job. The runs themselves are proved in
 * test/integration/sql-snippets.int-spec.ts on real tenant databases.
 */
describe('SQL snippets: API and sql:apply', () => {
  let catalog: TestCatalog;
  let engine: RunningEngine;
  let admin: string;
  let support: string;
  let dir: string;
  let ds: DataSource;
  let live: Install[];
  let building: Install;
  let env: NodeJS.ProcessEnv;

  const post = (body: unknown, token = admin) =>
    fetch(`${engine.url}/v1/sql-snippets`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const counts = async () => [await ds.getRepository(CodeUpdate).count(), await ds.getRepository(CodeUpdateItem).count(), await ds.getRepository(Job).count()];

  beforeAll(async () => {
    catalog = await createTestCatalog('mariadb', 'sqlsnip');
    engine = await startEngine(testEngineConfig(catalog.url, { ENGINE_ROLES: 'api' }));
    const tokens = engine.app.get(ApiTokensService);
    admin = (await tokens.issue('ops', ['admin'], { actor: 'test', via: 'cli' })).token;
    support = (await tokens.issue('desk', ['support'], { actor: 'test', via: 'cli' })).token;
    dir = mkdtempSync(join(tmpdir(), 'sqlsnip-'));
    ds = engine.app.get(DataSource);
    const server = await ds.getRepository(Server).save(testServer(join(dir, 'd1'), 'd1.sqlsnip.test', ['dispatcher', 'handler', 'database'], null, { privateIp: '127.0.108.11' }));
    const group = await codeGroupFor(ds, server);
    const row = (n: string, status: Install['status']) => ({
      orderRef: `SNIP-${n}`, customerEmail: 'o@example.com', license: 'paid', fsName: `snip${n}`, dbName: `db_snip${n}`, dbUser: `u_snip${n}`,
      dbPasswordEnc: 'unused', dbServerId: server.id, sharedCodeGroupId: group.id, masterServerId: server.id, status,
    }) as Partial<Install>;
    live = await ds.getRepository(Install).save([row('a', 'live'), row('b', 'live'), row('c', 'live')]);
    building = await ds.getRepository(Install).save(row('d', 'building'));
    env = cleanEnv({ CATALOG_URL: catalog.url, SECRETS_KEY: TEST_SECRETS_KEY, LOG_LEVEL: 'warn' });
  });
  afterAll(async () => {
    await engine?.close();
    await catalog?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses bad bodies, unknown and not-live installs, a support token: nothing created', async () => {
    const before = await counts();
    const ids = live.map((i) => i.id);
    for (const [body, code] of [
      [{ name: 'x', sql: 'SELECT 1;' }, 'VALIDATION_FAILED'],
      [{ name: 'x', sql: 'SELECT 1;', installIds: ids, groupId: live[0]!.sharedCodeGroupId }, 'VALIDATION_FAILED'],
      [{ name: 'x', sql: 'SELECT 1;', installIds: [] }, 'VALIDATION_FAILED'],
      [{ name: 'x', sql: 'SELECT 1;', installIds: Array.from({ length: 1001 }, (_, i) => i + 1) }, 'VALIDATION_FAILED'],
      [{ name: 'x', sql: 'SELECT 1;', installIds: ['1'] }, 'VALIDATION_FAILED'],
      [{ name: '../etc', sql: 'SELECT 1;', installIds: ids }, 'VALIDATION_FAILED'],
      [{ name: 'a'.repeat(101), sql: 'SELECT 1;', installIds: ids }, 'VALIDATION_FAILED'],
      [{ name: 'x', sql: 'SELECT 1;', installIds: ids, force: 'yes' }, 'VALIDATION_FAILED'],
      [{ name: 'x', sql: 'SELECT 1;', installIds: ids, extra: 1 }, 'VALIDATION_FAILED'],
      [{ name: 'x', sql: '-- only a comment', installIds: ids }, 'SNIPPET_EMPTY'],
    ] as const) {
      const res = await post(body);
      expect([res.status, (await json(res)).code, JSON.stringify(body).slice(0, 60)]).toEqual([400, code, JSON.stringify(body).slice(0, 60)]);
    }
    const unknown = await post({ name: 'x', sql: 'SELECT 1;', installIds: [ids[0], 999_999] });
    expect(unknown.status).toBe(404);
    const notLive = await post({ name: 'x', sql: 'SELECT 1;', installIds: [ids[0], building.id] });
    expect([notLive.status, (await json(notLive)).code]).toEqual([409, 'INSTALL_NOT_LIVE']);
    expect((await post({ name: 'x', sql: 'SELECT 1;', installIds: ids }, support)).status).toBe(403);
    expect(await counts()).toEqual(before);
  });

  it('answers a dry run (200, nothing created), queues an update (202) and serves its report; refuses it where it ran already', async () => {
    const ids = live.map((i) => i.id);
    const before = await counts();
    const dry = await post({ name: 'fix-1', sql: 'UPDATE settings SET value = 1;\nUPDATE settings SET value = 2;', installIds: ids, dryRun: true });
    expect(dry.status).toBe(200);
    expect(await json(dry)).toMatchObject({ dryRun: true, name: 'fix-1', installs: ids.map((installId) => ({ installId, statements: 2, applied: false })) });
    expect(await counts()).toEqual(before);

    const queued = await post({ name: 'fix-1', sql: 'UPDATE settings SET value = 1;', groupId: live[0]!.sharedCodeGroupId });
    expect(queued.status).toBe(202);
    const { updateId, jobId } = await json(queued);
    const job = await ds.getRepository(Job).findOneByOrFail({ id: jobId });
    expect(job).toMatchObject({ kind: 'code-update.sql-snippet', resourceKey: `codeupdate:${updateId}`, state: 'ready' });
    const report = await fetch(`${engine.url}/v1/sql-snippets/${updateId}`, { headers: { authorization: `Bearer ${support}` } });
    expect(report.status).toBe(200);
    expect(await json(report)).toMatchObject({ id: updateId, name: 'fix-1', state: 'planned', jobId, counts: { total: 3, pending: 3 }, items: ids.map((installId) => ({ installId, state: 'pending' })) });
    expect((await fetch(`${engine.url}/v1/sql-snippets/999999`, { headers: { authorization: `Bearer ${support}` } })).status).toBe(404);

    // Recorded on one install (as a run would): refused without force, naming it.
    await ds.getRepository(DatabaseUpdate).save({ installId: ids[1]!, file: 'snippet:fix-1', pluginId: null, checksum: 'c'.repeat(64), appliedAt: new Date(), jobId });
    const mid = await counts();
    const again = await post({ name: 'fix-1', sql: 'UPDATE settings SET value = 1;', installIds: ids });
    expect([again.status, await json(again)]).toEqual([409, expect.objectContaining({ code: 'SNIPPET_ALREADY_APPLIED', details: { name: 'fix-1', installIds: [ids[1]] } })]);
    expect(await counts()).toEqual(mid);
    expect((await post({ name: 'fix-1', sql: 'UPDATE settings SET value = 1;', installIds: ids, force: true })).status).toBe(202);
  });

  it('sql:apply (the built CLI): a dry run, a refusal (exit 1, nothing created), a queued update with --no-wait', async () => {
    const ids = live.map((i) => i.id).join(',');
    const file = join(dir, 'price-fix.sql');
    writeFileSync(file, "-- fix the prices\nUPDATE products SET price = 1 WHERE price < 0;\n");
    const dry = await runCli(['sql:apply', '--file', file, '--installs', ids, '--dry-run'], dir, env);
    expect(dry).toMatchObject({ code: 0 });
    expect(dry.stdout).toContain('dry run: snippet price-fix');
    expect(dry.stdout).toMatch(new RegExp(`${live[0]!.id}\\s+snipa\\s+\\d+\\s+d1\\.sqlsnip\\.test\\s+1\\s+no`));
    const before = await counts();
    const refused = await runCli(['sql:apply', '--file', file, '--installs', `${ids},${building.id}`], dir, env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('INSTALL_NOT_LIVE');
    expect((await runCli(['sql:apply', '--file', file, '--installs', ids, '--group', '1'], dir, env)).code).toBe(1);
    expect((await runCli(['sql:apply', '--file', file, '--installs', ids, '--name', 'bad name'], dir, env)).code).toBe(1);
    expect(await counts()).toEqual(before);
    const queued = await runCli(['sql:apply', '--file', file, '--installs', ids, '--no-wait'], dir, env);
    expect(queued).toMatchObject({ code: 0 });
    const [, updateId, jobId] = /update (\d+) queued \(job (\d+)\)/.exec(queued.stdout)!;
    expect(await ds.getRepository(CodeUpdate).findOneByOrFail({ id: Number(updateId) })).toMatchObject({ snippetName: 'price-fix', jobId: Number(jobId), requestedBy: expect.stringMatching(/^cli:/) });
    expect(await ds.getRepository(CodeUpdateItem).count({ where: { updateId: Number(updateId) } })).toBe(3);
  }, 120_000);
});
