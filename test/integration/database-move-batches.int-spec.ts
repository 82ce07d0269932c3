import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { INestApplicationContext, Type } from '@nestjs/common';
import mysql from 'mysql2/promise';
import { DataSource } from 'typeorm';
import { Server, type Install } from '@app/catalog';
import { CacheClears, LoginChecks } from '@app/database-move';
import { DatabasesModule, TenantDatabases } from '@app/databases';
import { HostsModule, ServerAccess } from '@app/hosts';
import { createTestCatalog, type TestCatalog } from '../support/catalog.js';
import { startQueueContext } from '../support/queue-context.js';
import { testServer } from '../support/server-roots.js';
import { writeDbOptionsFile } from '../support/tenant-db-server.js';
import { readTestbed } from '../support/testbed.js';

/**
 * The batching units of move-database on real servers: cache directories
 * of many installs emptied over SSH (the testbed sshd) in one command, and
 * many installs' logins checked on a real MariaDB (the testbed's): in one
 * command on a database server reached over SSH, or by connections from
 * the engine to one on its own host; each caller gets its own outcome.
 */
describe('move-database batches (SSH server, MariaDB)', () => {
  let base: string;
  let catalog: TestCatalog;
  let app: INestApplicationContext;
  let d1: Server;
  let db: Server;
  let dbOverSsh: Server;
  const commands: string[] = [];
  const INSTALLS = 40;
  const install = (n: number) => ({ id: 900 + n, fsName: `mvb${n}` }) as Install;
  const pw = (n: number) => `pw-${n}-${'s'.repeat(20)}`;
  const admin = () => {
    const m = readTestbed().mariadb;
    return mysql.createConnection({ host: m.host, port: m.port, user: m.adminUser, password: m.adminPassword, multipleStatements: true });
  };

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'movedb-batches-'));
    chmodSync(base, 0o755);
    catalog = await createTestCatalog('mariadb', 'movedb_batches');
    app = await startQueueContext(catalog.url, [CacheClears, LoginChecks], null, [HostsModule.forRoot({ http: false }), DatabasesModule] as unknown as Type[]);
    const servers = app.get(DataSource).getRepository(Server);
    d1 = await servers.save(testServer(join(base, 'd1'), 'mvb-d1.example.net', ['dispatcher', 'handler'], readTestbed().sshd));
    // The testbed's MariaDB twice: as a server on the engine's host (local), and as one reached over SSH (the testbed sshd).
    db = await servers.save(testServer(join(base, 'db'), 'mvb-db.example.net', ['database'], null, { dbOptionsFile: writeDbOptionsFile(base), privateIp: '127.0.0.1' }));
    dbOverSsh = await servers.save(testServer(join(base, 'dbssh'), 'mvb-dbssh.example.net', ['database'], readTestbed().sshd, { dbOptionsFile: writeDbOptionsFile(base), privateIp: '127.0.0.1' }));
    for (const server of [d1, db, dbOverSsh]) app.get(ServerAccess).executorFor(server).observer = (hostname) => void commands.push(hostname);
    const a = await admin();
    try {
      for (let n = 1; n <= 22; n++) {
        await a.query(`DROP DATABASE IF EXISTS mvbt_${n}; DROP USER IF EXISTS 'mvbt_${n}'@'127.0.0.1'; CREATE DATABASE mvbt_${n}; CREATE USER 'mvbt_${n}'@'127.0.0.1' IDENTIFIED BY '${pw(n)}';`);
        // The last one has no grant on its database.
        if (n < 22) await a.query(`GRANT ALL PRIVILEGES ON \`mvbt\\_${n}\`.* TO 'mvbt_${n}'@'127.0.0.1'`);
      }
    } finally {
      await a.end();
    }
  }, 60_000);

  afterAll(async () => {
    const a = await admin().catch(() => null);
    if (a) {
      for (let n = 1; n <= 22; n++) await a.query(`DROP DATABASE IF EXISTS mvbt_${n}; DROP USER IF EXISTS 'mvbt_${n}'@'127.0.0.1'`).catch(() => undefined);
      await a.end();
    }
    await app?.close();
    await catalog?.drop();
    rmSync(base, { recursive: true, force: true });
  });

  it('empties the cache directories of 40 installs in one SSH command, keeping the directories; a cache that is a symlink is not followed', async () => {
    const cache = (n: number, dir: string) => join(d1.homeRoot, `mvb${n}`, dir);
    for (let n = 1; n <= INSTALLS; n++) {
      for (const dir of ['heavymetal/cache', 'var/sessions']) {
        mkdirSync(join(cache(n, dir), 'nested'), { recursive: true });
        writeFileSync(join(cache(n, dir), 'compiled.php'), '<?php // old');
        writeFileSync(join(cache(n, dir), 'nested', 'x'), 'x');
      }
    }
    // One install's cache is a link to somewhere else: what is there stays.
    const elsewhere = join(base, 'elsewhere');
    mkdirSync(elsewhere);
    writeFileSync(join(elsewhere, 'keep'), 'keep');
    rmSync(cache(1, 'var/sessions'), { recursive: true });
    symlinkSync(elsewhere, cache(1, 'var/sessions'));

    commands.length = 0;
    const clears = app.get(CacheClears);
    await Promise.all(Array.from({ length: INSTALLS }, (_, k) => clears.empty(d1, install(k + 1), ['heavymetal/cache', 'var/sessions'])));
    expect(commands).toEqual([d1.hostname]);
    for (let n = 2; n <= INSTALLS; n++) for (const dir of ['heavymetal/cache', 'var/sessions']) expect({ n, dir, left: readdirSync(cache(n, dir)) }).toEqual({ n, dir, left: [] });
    expect(readdirSync(cache(1, 'heavymetal/cache'))).toEqual([]);
    expect(existsSync(join(elsewhere, 'keep'))).toBe(true);
    // A path outside the server's roots is refused before anything runs.
    await expect(clears.empty(d1, install(1), ['../../../etc'])).rejects.toThrow();
  });

  it.each([
    ['over SSH: one command on the database server', () => dbOverSsh, 1],
    ["on the engine's host: connections from the engine, no command", () => db, 0],
  ])("checks 22 installs' logins %s; each its own answer, no password in a failure", async (_how, server, expectedCommands) => {
    // How the server is reached is read once per server (and kept): not part of the checks.
    await app.get(TenantDatabases).connection(server());
    commands.length = 0;
    const logins = app.get(LoginChecks);
    const outcomes = await Promise.allSettled(
      Array.from({ length: 22 }, (_, k) => {
        const n = k + 1;
        // The 21st gives a wrong password.
        return logins.check(server(), `mvbt_${n}`, { user: `mvbt_${n}`, password: n === 21 ? 'wrong-password-xyz' : pw(n) });
      }),
    );
    expect(commands).toEqual(Array(expectedCommands).fill(server().hostname));
    expect(outcomes.slice(0, 20).map((o) => o.status)).toEqual(Array(20).fill('fulfilled'));
    const [wrong, ungranted] = outcomes.slice(20).map((o) => (o.status === 'rejected' ? (o.reason as Error).message : 'fulfilled'));
    expect(wrong).toMatch(/Access denied for user 'mvbt_21'/);
    expect(wrong).not.toContain('wrong-password-xyz');
    expect(ungranted).toMatch(/Access denied for user 'mvbt_22'.*to database 'mvbt_22'/);
    expect(ungranted).not.toContain(pw(22));
  });

  it('refuses a database or user name that is not one, before anything runs', async () => {
    const logins = app.get(LoginChecks);
    // A name that is not one is refused before anything runs.
    await expect(logins.check(db, 'mvbt_1; DROP', { user: 'mvbt_1', password: pw(1) })).rejects.toThrow(/refused/);
    await expect(logins.check(dbOverSsh, 'mvbt_1', { user: "mvbt_1'@'%", password: pw(1) })).rejects.toThrow(/refused/);
  });
});
