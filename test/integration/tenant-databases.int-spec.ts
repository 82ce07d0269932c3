import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import type { Server } from '@app/catalog';
import type { EngineConfig } from '@app/config';
import { quoteIdentifier, splitSql, SqlStatementError, TenantDatabases } from '@app/databases';
import { ServerAccess } from '@app/hosts';
import { writeDbOptionsFile } from '../support/tenant-db-server.js';
import { readTestbed } from '../support/testbed.js';

/** Tenant databases on the testbed's MariaDB through the `mariadb` client, as the build saga uses them. */
describe('TenantDatabases (real MariaDB through the mariadb client)', () => {
  const base = mkdtempSync(join(tmpdir(), 'tenant-db-'));
  const access = new ServerAccess({ sshKeyPath: null } as unknown as EngineConfig);
  const tenants = new TenantDatabases(access, { embedded: false } as EngineConfig);
  const server = {
    id: 1,
    hostname: 'db1.example.net',
    transport: 'local',
    homeRoot: join(base, 'home'),
    sharedCodeRoot: join(base, 'shared'),
    nginxConfDir: join(base, 'nginx'),
    cronDir: join(base, 'cron'),
    certsRoot: join(base, 'certs'),
    phpFpmPoolDir: null,
    dbOptionsFile: writeDbOptionsFile(base),
  } as unknown as Server;
  const suffix = Math.random().toString(36).slice(2, 8);
  const db = `shop_t${suffix}`;
  const user = `t${suffix}`;
  // Quotes, backslashes and SQL in the password: it must still be the password.
  const password = `p'w\\"; DROP DATABASE mysql; -- ${suffix}`;
  const connect = (database?: string) => {
    const { mariadb } = readTestbed();
    return mysql.createConnection({ host: mariadb.host, port: mariadb.port, user, password, database });
  };

  afterAll(async () => {
    await tenants.dropUser(server, user, ['127.0.0.1']).catch(() => undefined);
    await tenants.dropDatabase(server, db).catch(() => undefined);
    access.onModuleDestroy();
    rmSync(base, { recursive: true, force: true });
  });

  it('creates a database and a user who can use it and nothing else; both idempotent', async () => {
    expect(await tenants.databaseExists(server, db)).toBe(false);
    await tenants.createDatabase(server, db);
    await tenants.createDatabase(server, db);
    await tenants.createUser(server, user, password, db, ['127.0.0.1']);
    await tenants.createUser(server, user, password, db, ['127.0.0.1']);
    expect(await tenants.databaseExists(server, db)).toBe(true);
    expect(await tenants.userExists(server, user)).toBe(true);
    const connection = await connect(db);
    try {
      await connection.query('CREATE TABLE probe (id INT PRIMARY KEY)');
      await expect(connection.query('SELECT COUNT(*) FROM mysql.user')).rejects.toThrow(/denied/);
    } finally {
      await connection.end();
    }
  });

  it('runs a file of statements (comments, quoted semicolons, a routine) in the tenant database', async () => {
    const sql = [
      '-- base tables',
      'CREATE TABLE settings (name VARCHAR(64) PRIMARY KEY, value TEXT NOT NULL);',
      "INSERT INTO settings VALUES ('greeting', 'Welcome; enjoy'), ('quote', 'it''s');",
      'DELIMITER //',
      'CREATE PROCEDURE count_settings() BEGIN SELECT COUNT(*) FROM settings; END //',
      'DELIMITER ;',
      '',
    ].join('\n');
    await tenants.runStatements(server, db, '0001_base.sql', splitSql(sql), { sqlMode: 'STRICT_TRANS_TABLES', charset: 'utf8mb4' });
    const connection = await connect(db);
    try {
      const [rows] = await connection.query('SELECT name, value FROM settings ORDER BY name');
      expect(rows).toEqual([
        { name: 'greeting', value: 'Welcome; enjoy' },
        { name: 'quote', value: "it's" },
      ]);
      const [result] = await connection.query('CALL count_settings()');
      expect((result as unknown[][])[0]).toEqual([{ 'COUNT(*)': 2 }]);
    } finally {
      await connection.end();
    }
  });

  it('names the file, the line, the statement and the server message of a failing statement', async () => {
    const sql = "INSERT INTO settings VALUES ('a', 'b');\n\n/* next */\nINSERT INTO no_such_table (id)\n  VALUES (1);\nINSERT INTO settings VALUES ('never', 'run');\n";
    const error = await tenants.runStatements(server, db, '0003_broken.sql', splitSql(sql)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SqlStatementError);
    expect(error).toMatchObject({ file: '0003_broken.sql', line: 4, statement: 'INSERT INTO no_such_table (id)\n  VALUES (1)', server: 'db1.example.net' });
    expect((error as Error).message).toMatch(/0003_broken\.sql line 4 on db1\.example\.net: Table '.*no_such_table' doesn't exist; statement: INSERT INTO no_such_table/);
  });

  it('refuses hostile names before any SQL runs, and drops only what it is told', async () => {
    for (const name of ['x`; DROP DATABASE mysql; --', 'Shop', '1abc', 'a b', '']) {
      expect(() => quoteIdentifier(name)).toThrow(/refused SQL identifier/);
      await expect(tenants.createDatabase(server, name)).rejects.toThrow(/refused SQL identifier/);
    }
    await expect(tenants.createUser(server, user, password, db, ["'; DROP USER root; --"])).rejects.toThrow(/refused client host/);
    await tenants.dropUser(server, user, ['127.0.0.1']);
    await tenants.dropDatabase(server, db);
    await tenants.dropDatabase(server, db);
    expect(await tenants.databaseExists(server, db)).toBe(false);
    expect(await tenants.userExists(server, user)).toBe(false);
    expect(await tenants.databaseExists(server, 'mysql')).toBe(true);
  });
});
