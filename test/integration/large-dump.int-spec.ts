import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import type { Server } from '@app/catalog';
import type { EngineConfig } from '@app/config';
import { planParallelTables, prepareSql, splitSql, SqlStatementError, TenantDatabases } from '@app/databases';
import { ServerAccess } from '@app/hosts';
import { largeDump } from '../support/large-dump.js';
import { writeDbOptionsFile } from '../support/tenant-db-server.js';
import { readTestbed } from '../support/testbed.js';

const RUNS = 3;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** A shop's install dump of about 400 statements (130 tables with demo data), loaded as the build saga loads it, timed. */
describe('a large install dump (real MariaDB through the mariadb client)', () => {
  const base = mkdtempSync(join(tmpdir(), 'large-dump-'));
  const access = new ServerAccess({ sshKeyPath: null } as unknown as EngineConfig);
  const tenants = new TenantDatabases(access, { embedded: false } as EngineConfig);
  const owner = { installId: 4444 };
  const server = { id: 1, hostname: 'db1.example.net', transport: 'local', dbOptionsFile: writeDbOptionsFile(base) } as unknown as Server;
  const suffix = Math.random().toString(36).slice(2, 8);
  const db = `shop_l${suffix}`;
  const login = { user: `l${suffix}`, password: `pw-${suffix}` };

  beforeAll(async () => {
    await tenants.createDatabase(server, db, 'utf8mb4', owner);
    await tenants.createUser(server, login, db, await tenants.accountHosts(server, ['127.0.0.1']));
  });

  afterAll(async () => {
    await tenants.dropUser(server, login, db, await tenants.accountHosts(server, ['127.0.0.1'])).catch(() => undefined);
    await tenants.dropDatabase(server, db, owner).catch(() => undefined);
    access.onModuleDestroy();
    rmSync(base, { recursive: true, force: true });
  });

  it('loads every table and row, its tables made on one or on four connections, reset and load timed', async () => {
    const dump = largeDump();
    const session = { sqlMode: 'NO_ENGINE_SUBSTITUTION', charset: 'utf8mb4' };
    const statements = splitSql(prepareSql(dump.sql, { stripLinePrefixes: ['--'], tablePrefix: { placeholder: 'oc_', value: 'shop_' } }));
    expect(statements).toHaveLength(dump.statements);
    expect(planParallelTables(statements)?.tables).toHaveLength(130);
    const times: Record<string, number[]> = { reset: [], 'run 1 connection': [], 'run 4 connections': [] };
    for (let i = 0; i < RUNS; i++) {
      // Both ways in each round, in alternating order (the machine's load moves).
      for (const connections of i % 2 === 0 ? [1, 4] : [4, 1]) {
        // As a new install meets it: the database step created it empty, the SQL step resets it and loads the dump.
        await tenants.dropDatabase(server, db, owner);
        await tenants.createDatabase(server, db, 'utf8mb4', owner);
        const t0 = performance.now();
        await tenants.resetDatabase(server, db, 'utf8mb4', owner);
        const t1 = performance.now();
        await tenants.runStatements(server, db, login, 'install.sql', statements, session, { connections });
        times.reset!.push(t1 - t0);
        times[`run ${connections} connection${connections > 1 ? 's' : ''}`]!.push(performance.now() - t1);
      }
    }
    // A rerun of the step meets the loaded database: the reset drops it; then the load the build does (four connections), checked below.
    const r0 = performance.now();
    await tenants.resetDatabase(server, db, 'utf8mb4', owner);
    const rerunReset = performance.now() - r0;
    await tenants.runStatements(server, db, login, 'install.sql', statements, session, { connections: 4 });
    console.log(
      `reset of the loaded database ${rerunReset.toFixed(0)} ms; large dump (${dump.statements} statements, ${(dump.sql.length / 1024).toFixed(0)} KiB), median of ${RUNS} in ms: ` +
        Object.entries(times).map(([k, v]) => `${k} ${median(v).toFixed(0)} [${v.map((x) => x.toFixed(0)).join(' ')}]`).join(', '),
    );

    const { mariadb } = readTestbed();
    const connection = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: login.user, password: login.password, database: db });
    try {
      const [tables] = await connection.query(`SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY t`, [db]);
      expect((tables as { t: string }[]).map((r) => r.t)).toEqual([...dump.rows.keys()].map((t) => t.replace(/^oc_/, 'shop_')).sort());
      const counts = [...dump.rows.keys()].map((t) => `SELECT '${t}' AS t, COUNT(*) AS n FROM \`${t.replace(/^oc_/, 'shop_')}\``).join(' UNION ALL ');
      const [rows] = await connection.query(counts);
      expect(new Map((rows as { t: string; n: number }[]).map((r) => [r.t, Number(r.n)]))).toEqual(dump.rows);
    } finally {
      await connection.end();
    }
  }, 300_000);

  it('names the failing statement of a load on several connections, a table or a row', async () => {
    const session = { charset: 'utf8mb4' };
    const table = (name: string, column = 'id int PRIMARY KEY') => `DROP TABLE IF EXISTS \`${name}\`;\nCREATE TABLE \`${name}\` (${column}) ENGINE=InnoDB;\n`;
    const badTable = splitSql(`SET NAMES utf8mb4;\n${table('t1')}${table('t2')}${table('t3', 'id int PRIMARY KEY, id int')}${table('t4')}INSERT INTO t1 VALUES (1);\n`);
    await tenants.resetDatabase(server, db, 'utf8mb4', owner);
    const failed = await tenants.runStatements(server, db, login, 'bad-table.sql', badTable, session, { connections: 4 }).catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(SqlStatementError);
    expect(failed).toMatchObject({ file: 'bad-table.sql', line: 7, serverMessage: expect.stringMatching(/Duplicate column name 'id'/) });

    const badRow = splitSql(`${table('t1')}${table('t2')}INSERT INTO t1 VALUES (1);\nINSERT INTO t2 VALUES ('x');\n`);
    await tenants.resetDatabase(server, db, 'utf8mb4', owner);
    const row = await tenants.runStatements(server, db, login, 'bad-row.sql', badRow, { ...session, sqlMode: 'STRICT_ALL_TABLES' }, { connections: 4 }).catch((e: unknown) => e);
    expect(row).toMatchObject({ file: 'bad-row.sql', line: 6, serverMessage: expect.stringMatching(/Incorrect integer value/) });
  });
});
