import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { INestApplicationContext, Type } from '@nestjs/common';
import mysql from 'mysql2/promise';
import { DataSource } from 'typeorm';
import { CodeUpdate, CodeUpdateItem, DatabaseUpdate, Install, Job, JobLog, Server, SharedCodeGroup } from '@app/catalog';
import { CodebasesModule, SAMPLE_MANIFEST } from '@app/codebases';
import { CodebaseUpdateModule, SqlSnippetsService, type SqlSnippetQueuedView } from '@app/codebase-update';
import { DomainError, sqlStringLiteral } from '@app/common';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { splitSql, TenantDatabases } from '@app/databases';
import { HostsModule } from '@app/hosts';
import { encryptSecret, InstallsModule, RemovalModule } from '@app/installs';
import { SagaModule } from '@app/saga';
import { createTestCatalog, type TestCatalog } from '../support/catalog.js';
import { eventually, startQueueContext } from '../support/queue-context.js';
import { testServer } from '../support/server-roots.js';
import { writeDbOptionsFile } from '../support/tenant-db-server.js';
import { readTestbed } from '../support/testbed.js';

/**
 * SQL snippets on live installs whose tenant databases and users are real
 * (the testbed's MariaDB), run by a real worker through the queue: each as
 * the install's own user, recorded in database_updates, refused a second
 * time without force, a failing statement reported with file, line and
 * statement, and no password anywhere.
 */
describe('SQL snippets (real MariaDB tenant databases, a real worker)', () => {
  let catalog: TestCatalog;
  let app: INestApplicationContext;
  let ds: DataSource;
  let base: string;
  let dbServer: Server;
  const suffix = Math.random().toString(36).slice(2, 7);
  const installs: { install: Install; password: string }[] = [];
  const by = { actor: 'test', via: 'cli' as const };

  const asInstall = async (i: number, sql: string) => {
    const { mariadb } = readTestbed();
    const { install, password } = installs[i]!;
    const c = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: install.dbUser, password, database: install.dbName });
    try {
      return (await c.query(sql))[0] as Record<string, unknown>[];
    } finally {
      await c.end();
    }
  };
  const flag = async (i: number) => (await asInstall(i, "SELECT value FROM settings WHERE name = 'flag'")).map((r) => r.value);
  const snippets = () => app.get(SqlSnippetsService);
  const finished = (updateId: number) =>
    eventually(async () => {
      const u = await ds.getRepository(CodeUpdate).findOneBy({ id: updateId });
      return u && (u.state === 'done' || u.state === 'failed') ? u : null;
    }, 60_000, `code update ${updateId}`);
  const refusal = (attempt: Promise<unknown>) => attempt.then(() => null, (e: unknown) => e as DomainError);

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'sql-snippets-'));
    catalog = await createTestCatalog('mariadb', 'sql_snippets');
    // The engine's job kinds are declared by the libs the module imports: the worker wants each handled.
    app = await startQueueContext(catalog.url, [], { concurrency: 2, pollMs: 20, reapEveryMs: 500 }, [
      InstallsModule.forRoot({ http: false }), RemovalModule.forRoot({ http: false, jobs: true }), HostsModule.forRoot({ http: false }), CodebasesModule.forRoot({ http: false }), SagaModule,
      CodebaseUpdateModule.forRoot({ http: false, jobs: true }),
    ] as unknown as Type[]);
    ds = app.get(DataSource);
    const config = app.get<EngineConfig>(ENGINE_CONFIG);
    dbServer = await ds.getRepository(Server).save(testServer(join(base, 'db'), 'db1.example.net', ['database'], null, { dbOptionsFile: writeDbOptionsFile(base), privateIp: '127.0.0.1' }));
    const group = await ds.getRepository(SharedCodeGroup).save({
      name: `snip-${suffix}`, tier: 'paid', repoUrl: '/nonexistent', revision: 'a'.repeat(40), path: join(base, 'code'), masterServerId: dbServer.id,
      installLimit: 10, installCount: 4, pinned: false, manifest: JSON.parse(JSON.stringify(SAMPLE_MANIFEST)), state: 'ready',
    });
    const tenants = app.get(TenantDatabases);
    for (let i = 0; i < 4; i++) {
      // Quotes and a backslash: the password must survive as it is, and be masked in every form.
      const password = `pw'${i}\\"Zq${suffix}-${i}-secret`;
      const install = await ds.getRepository(Install).save({
        orderRef: `SNIP-${suffix}-${i}`, customerEmail: 'owner@example.com', license: 'paid', fsName: `sn${suffix}${i}`, dbName: `shop_sn${suffix}${i}`, dbUser: `sn${suffix}${i}`,
        dbPasswordEnc: encryptSecret(config.secretsKey, password), dbServerId: dbServer.id, sharedCodeGroupId: group.id, masterServerId: dbServer.id, status: 'live',
      } as Partial<Install>);
      await tenants.createDatabase(dbServer, install.dbName, 'utf8mb4', { installId: install.id });
      await tenants.createUser(dbServer, { user: install.dbUser, password }, install.dbName, ['127.0.0.1', 'localhost']);
      const tables = 'CREATE TABLE settings (name VARCHAR(64) PRIMARY KEY, value TEXT NOT NULL);' + (i === 1 ? '' : '\nCREATE TABLE extra (id INT PRIMARY KEY, note TEXT);');
      await tenants.runStatements(dbServer, install.dbName, { user: install.dbUser, password }, 'base.sql', splitSql(tables));
      installs.push({ install, password });
    }
  });
  afterAll(async () => {
    const tenants = app?.get(TenantDatabases);
    for (const { install, password } of installs) {
      await tenants.dropUser(dbServer, { user: install.dbUser, password }, install.dbName, ['127.0.0.1', 'localhost']).catch(() => undefined);
      await tenants.dropDatabase(dbServer, install.dbName, { installId: install.id }).catch(() => undefined);
    }
    await app?.close();
    await catalog?.drop();
    rmSync(base, { recursive: true, force: true });
  });

  const FLAG = "-- turns the flag on (again: appends +)\nINSERT INTO settings (name, value) VALUES ('flag', 'on')\n  ON DUPLICATE KEY UPDATE value = CONCAT(value, '+');\n";

  it('runs a snippet on three chosen installs as their own users and records it; refuses it a second time (nothing changes); runs it again with force', async () => {
    const chosen = installs.slice(0, 3).map((i) => i.install.id);
    const plan = await snippets().apply({ name: 'flag-on', sql: FLAG, installIds: chosen, dryRun: true }, by);
    expect(plan).toMatchObject({ dryRun: true, name: 'flag-on', installs: chosen.map((installId) => ({ installId, statements: 1, applied: false })) });
    expect(await ds.getRepository(CodeUpdate).count()).toBe(0);

    const { updateId, jobId } = (await snippets().apply({ name: 'flag-on', sql: FLAG, installIds: chosen }, by)) as SqlSnippetQueuedView;
    const update = await finished(updateId);
    expect(update).toMatchObject({ state: 'done', kind: 'sql-snippet', jobId, snippetName: 'flag-on', error: null });
    for (const i of [0, 1, 2]) expect(await flag(i)).toEqual(['on']);
    expect(await flag(3)).toEqual([]);
    const recorded = await ds.getRepository(DatabaseUpdate).find({ where: { file: 'snippet:flag-on' }, order: { installId: 'ASC' } });
    expect(recorded.map((r) => [r.installId, r.jobId, r.checksum])).toEqual(chosen.map((id) => [id, jobId, update.snippetChecksum]));
    const report = await snippets().report(updateId);
    expect(report.counts).toMatchObject({ total: 3, done: 3, failed: 0 });
    expect(report.items.every((i) => i.state === 'done' && i.sqlApplied === 1 && i.sqlMs !== null && i.startedAt && i.finishedAt)).toBe(true);

    // Once more, without force: refused as a whole (the fourth install has not had it either), nothing created or run.
    const [updatesBefore, jobsBefore] = [await ds.getRepository(CodeUpdate).count(), await ds.getRepository(Job).count()];
    const refused = await refusal(snippets().apply({ name: 'flag-on', sql: FLAG, installIds: [...chosen, installs[3]!.install.id] }, by));
    expect(refused).toMatchObject({ code: 'SNIPPET_ALREADY_APPLIED', status: 409, details: { installIds: chosen } });
    expect([await ds.getRepository(CodeUpdate).count(), await ds.getRepository(Job).count()]).toEqual([updatesBefore, jobsBefore]);
    for (const i of [0, 1, 2]) expect(await flag(i)).toEqual(['on']);
    expect(await flag(3)).toEqual([]);

    // With force: run again, the existing rows updated (one per install still).
    const again = (await snippets().apply({ name: 'flag-on', sql: FLAG, installIds: chosen, force: true }, by)) as SqlSnippetQueuedView;
    expect(await finished(again.updateId)).toMatchObject({ state: 'done' });
    for (const i of [0, 1, 2]) expect(await flag(i)).toEqual(['on+']);
    const rows = await ds.getRepository(DatabaseUpdate).find({ where: { file: 'snippet:flag-on' } });
    expect(rows.map((r) => r.jobId)).toEqual([again.jobId, again.jobId, again.jobId]);
  });

  it("reports a failing statement's install failed with file, line and statement, the others done; the password shows nowhere", async () => {
    const chosen = installs.slice(0, 3).map((i) => i.install.id);
    const secret = installs[1]!.password;
    // Install 1 has no table `extra`; the statement quotes its password (the redaction must hold even then).
    const sql = `UPDATE settings SET value = 'x' WHERE name = 'nothing';\n\nINSERT INTO extra (id, note) VALUES (1, ${sqlStringLiteral(secret)});\n`;
    const { updateId, jobId } = (await snippets().apply({ name: 'extra-note', sql, installIds: chosen }, by)) as SqlSnippetQueuedView;
    expect(await finished(updateId)).toMatchObject({ state: 'failed', error: `failed on install(s) ${chosen[1]}` });
    const report = await snippets().report(updateId);
    const [a, b, c] = report.items;
    expect([a!.state, b!.state, c!.state]).toEqual(['done', 'failed', 'done']);
    expect(b).toMatchObject({ errorFile: 'snippet:extra-note', errorLine: 3, sqlApplied: 0 });
    expect(b!.errorStatement).toMatch(/^INSERT INTO extra \(id, note\) VALUES \(1, '?\[redacted\]'?\)$/);
    expect(b!.error).toMatch(/snippet:extra-note line 3 on db1\.example\.net: Table '.*extra' doesn't exist/);
    expect(await asInstall(0, 'SELECT note FROM extra')).toEqual([{ note: secret }]);
    expect(await ds.getRepository(DatabaseUpdate).find({ where: { file: 'snippet:extra-note' } }).then((r) => r.map((u) => u.installId).sort())).toEqual([chosen[0], chosen[2]]);

    // The password in no form: not in the report, the items, the job's output or its error.
    const logs = (await ds.getRepository(JobLog).find({ where: { jobId } })).map((l) => l.line).join('\n');
    expect(logs).toContain('[redacted]');
    const job = await ds.getRepository(Job).findOneByOrFail({ id: jobId });
    const items = await ds.getRepository(CodeUpdateItem).find({ where: { updateId } });
    const everything = [logs, JSON.stringify(report), JSON.stringify(items), job.lastError ?? ''].join('\n');
    for (const form of [secret, sqlStringLiteral(secret).slice(1, -1), `Zq${suffix}-1-secret`]) expect(everything).not.toContain(form);
  });

  it('resumes an interrupted update: ended items are kept, running and pending ones run (once)', async () => {
    const [x, y] = [installs[2]!.install.id, installs[3]!.install.id];
    const sql = "INSERT INTO settings (name, value) VALUES ('resume', 'once');\n";
    const { updateId, jobId } = (await snippets().apply({ name: 'resume', sql, installIds: [x, y] }, by)) as SqlSnippetQueuedView;
    await finished(updateId);
    // As a worker killed mid-way leaves it: the update running, one item running (nothing recorded), the other ended.
    await ds.getRepository(CodeUpdate).update({ id: updateId }, { state: 'running', finishedAt: null });
    await ds.getRepository(CodeUpdateItem).update({ updateId, installId: y }, { state: 'running' });
    await ds.getRepository(DatabaseUpdate).delete({ installId: y, file: 'snippet:resume' });
    await asInstall(3, "DELETE FROM settings WHERE name = 'resume'");
    await ds.getRepository(Job).update({ id: jobId }, { state: 'ready', runAfter: new Date(0) });
    await eventually(async () => (await ds.getRepository(CodeUpdate).findOneByOrFail({ id: updateId })).finishedAt !== null, 30_000, 'the resumed update');
    // A re-run of install x (done) would fail on the duplicate key: it was not run again.
    expect((await snippets().report(updateId)).items.map((i) => i.state)).toEqual(['done', 'done']);
    expect(await asInstall(2, "SELECT value FROM settings WHERE name = 'resume'")).toEqual([{ value: 'once' }]);
    expect(await asInstall(3, "SELECT value FROM settings WHERE name = 'resume'")).toEqual([{ value: 'once' }]);
  });

  it('refuses unknown installs (404), installs that are not live (409), both or neither of installIds and groupId (400): nothing created', async () => {
    const before = await ds.getRepository(CodeUpdate).count();
    expect(await refusal(snippets().apply({ name: 'x', sql: 'SELECT 1;', installIds: [installs[0]!.install.id, 999_999] }, by))).toMatchObject({ code: 'NOT_FOUND', status: 404 });
    await ds.getRepository(Install).update({ id: installs[3]!.install.id }, { status: 'building' });
    try {
      expect(await refusal(snippets().apply({ name: 'x', sql: 'SELECT 1;', installIds: [installs[3]!.install.id] }, by))).toMatchObject({ code: 'INSTALL_NOT_LIVE', status: 409 });
    } finally {
      await ds.getRepository(Install).update({ id: installs[3]!.install.id }, { status: 'live' });
    }
    expect(await refusal(snippets().apply({ name: 'x', sql: 'SELECT 1;', installIds: [installs[0]!.install.id], groupId: installs[0]!.install.sharedCodeGroupId! }, by))).toMatchObject({ code: 'VALIDATION_FAILED' });
    expect(await refusal(snippets().apply({ name: 'x', sql: 'SELECT 1;' }, by))).toMatchObject({ code: 'VALIDATION_FAILED' });
    expect(await refusal(snippets().apply({ name: '../x', sql: 'SELECT 1;', installIds: [installs[0]!.install.id] }, by))).toMatchObject({ code: 'VALIDATION_FAILED' });
    expect(await refusal(snippets().apply({ name: 'x', sql: '-- nothing\n', installIds: [installs[0]!.install.id] }, by))).toMatchObject({ code: 'SNIPPET_EMPTY' });
    expect(await ds.getRepository(CodeUpdate).count()).toBe(before);
  });
});
