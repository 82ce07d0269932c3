import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jest } from '@jest/globals';
import mysql from 'mysql2/promise';
import type { Server } from '@app/catalog';
import type { EngineConfig } from '@app/config';
import { existsSync } from 'node:fs';
import { grantDatabase, NameConflictError, ownerComment, quoteIdentifier, splitSql, SqlStatementError, TenantDatabases } from '@app/databases';
import { ServerAccess } from '@app/hosts';
import { writeDbOptionsFile } from '../support/tenant-db-server.js';
import { readTestbed } from '../support/testbed.js';

/** Tenant databases on the testbed's MariaDB through the `mariadb` client, as the build saga uses them. */
describe('TenantDatabases (real MariaDB through the mariadb client)', () => {
  const base = mkdtempSync(join(tmpdir(), 'tenant-db-'));
  const access = new ServerAccess({ sshKeyPath: null } as unknown as EngineConfig);
  const tenants = new TenantDatabases(access, { embedded: false } as EngineConfig);
  const owner = { installId: 4242 };
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
  const login = { user, password };
  const connect = (database?: string) => {
    const { mariadb } = readTestbed();
    return mysql.createConnection({ host: mariadb.host, port: mariadb.port, user, password, database });
  };
  const admin = () => {
    const { mariadb } = readTestbed();
    return mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: mariadb.adminUser, password: mariadb.adminPassword, multipleStatements: true });
  };
  const asAdmin = async (sql: string) => {
    const connection = await admin();
    try {
      const [rows] = await connection.query(sql);
      return rows;
    } finally {
      await connection.end();
    }
  };

  afterAll(async () => {
    await tenants.dropUser(server, login, db, ['127.0.0.1']).catch(() => undefined);
    await tenants.dropDatabase(server, db, owner).catch(() => undefined);
    access.onModuleDestroy();
    rmSync(base, { recursive: true, force: true });
  });

  it('creates a database (its comment names the install) and a user who can use it and nothing else; a rerun finds them its own', async () => {
    expect(await tenants.databaseExists(server, db)).toBe(false);
    expect(await tenants.createDatabase(server, db, 'utf8mb4', owner)).toBe('created');
    expect(await tenants.createDatabase(server, db, 'utf8mb4', owner)).toBe('ours');
    expect(await asAdmin(`SELECT SCHEMA_COMMENT AS c FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '${db}'`)).toEqual([{ c: ownerComment(owner) }]);
    await tenants.createUser(server, login, db, ['127.0.0.1']);
    await tenants.createUser(server, login, db, ['127.0.0.1']);
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
    await tenants.runStatements(server, db, login, '0001_base.sql', splitSql(sql), { sqlMode: 'STRICT_TRANS_TABLES', charset: 'utf8mb4' });
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
    const error = await tenants.runStatements(server, db, login, '0003_broken.sql', splitSql(sql)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SqlStatementError);
    expect(error).toMatchObject({ file: '0003_broken.sql', line: 4, statement: 'INSERT INTO no_such_table (id)\n  VALUES (1)', server: 'db1.example.net' });
    expect((error as Error).message).toMatch(/0003_broken\.sql line 4 on db1\.example\.net: Table '.*no_such_table' doesn't exist; statement: INSERT INTO no_such_table/);
  });

  it("leaves nothing of a failing file's rows since its last DDL, and commits a file that succeeds", async () => {
    const sql = "CREATE TABLE half (id INT PRIMARY KEY);\nINSERT INTO half VALUES (1);\nINSERT INTO half VALUES (2);\nINSERT INTO half VALUES (1);\n";
    const error = await tenants.runStatements(server, db, login, '0006_half.sql', splitSql(sql)).catch((e: unknown) => e);
    expect(error).toMatchObject({ line: 4, message: expect.stringMatching(/Duplicate entry/) });
    expect(await asAdmin(`SELECT COUNT(*) AS n FROM ${db}.half`)).toEqual([{ n: 0 }]);
    await tenants.runStatements(server, db, login, '0007_rows.sql', splitSql('INSERT INTO half VALUES (1);\nINSERT INTO half VALUES (2);\n'));
    expect(await asAdmin(`SELECT COUNT(*) AS n FROM ${db}.half`)).toEqual([{ n: 2 }]);
  });

  it('resets a database with tables, routines and events to an empty one; an empty one of its own is left as it is, in one client call', async () => {
    const other = `shop_r${suffix}`;
    expect(await tenants.createDatabase(server, other, 'utf8mb4', owner)).toBe('created');
    try {
      const executor = access.executorFor(server);
      const run = jest.spyOn(executor, 'run');
      await tenants.resetDatabase(server, other, 'utf8mb4', owner);
      expect(run).toHaveBeenCalledTimes(1);
      run.mockRestore();
      for (const object of [`CREATE TABLE ${other}.t (id INT)`, `CREATE PROCEDURE ${other}.p() SELECT 1`, `CREATE EVENT ${other}.e ON SCHEDULE EVERY 1 DAY DISABLE DO SELECT 1`]) {
        await asAdmin(object);
        await tenants.resetDatabase(server, other, 'utf8mb4', owner);
        expect(
          await asAdmin(
            `SELECT (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '${other}') + (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '${other}') + (SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = '${other}') AS n`,
          ),
        ).toEqual([{ n: 0 }]);
      }
      // Another character set: made anew with it, its comment kept; another install's claim is refused.
      await tenants.resetDatabase(server, other, 'latin1', owner);
      expect(await asAdmin(`SELECT DEFAULT_CHARACTER_SET_NAME AS c, SCHEMA_COMMENT AS o FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '${other}'`)).toEqual([{ c: 'latin1', o: ownerComment(owner) }]);
      await expect(tenants.resetDatabase(server, other, 'latin1', { installId: 1 })).rejects.toBeInstanceOf(NameConflictError);
    } finally {
      await asAdmin(`DROP DATABASE IF EXISTS ${other}`);
    }
  });

  it('runs tenant SQL as the install: a \\! line runs no shell, another shop\'s database cannot be dropped', async () => {
    const victim = `shop_v${suffix}`;
    const marker = join(base, 'pwned');
    await asAdmin(`CREATE DATABASE ${victim}; CREATE TABLE ${victim}.t (id INT); INSERT INTO ${victim}.t VALUES (1)`);
    try {
      const shell = await tenants.runStatements(server, db, login, '0004_shell.sql', splitSql(`SELECT 1;\n\\! touch ${marker}\nSELECT 2;\n`)).catch((e: unknown) => e);
      expect(shell).toBeInstanceOf(SqlStatementError);
      expect(existsSync(marker)).toBe(false);
      const drop = await tenants.runStatements(server, db, login, '0005_drop.sql', splitSql(`DROP DATABASE ${victim};\n`)).catch((e: unknown) => e);
      expect(drop).toBeInstanceOf(SqlStatementError);
      expect((drop as Error).message).toMatch(/denied/i);
      expect(await asAdmin(`SELECT id FROM ${victim}.t`)).toEqual([{ id: 1 }]);
      // Nor through the admin connection: the client refuses its commands there too.
      expect(existsSync(marker)).toBe(false);
    } finally {
      await asAdmin(`DROP DATABASE IF EXISTS ${victim}`);
    }
  });

  it('never takes over an account or a database it did not create, and never drops them', async () => {
    const other = `o${suffix}`;
    const otherDb = `shop_o${suffix}`;
    await asAdmin(`CREATE USER '${other}'@'127.0.0.1' IDENTIFIED BY 'their-own'; CREATE DATABASE ${otherDb}; CREATE TABLE ${otherDb}.t (id INT)`);
    try {
      const stranger = { user: other, password: 'an install password' };
      await expect(tenants.createUser(server, stranger, otherDb, ['127.0.0.1'])).rejects.toBeInstanceOf(NameConflictError);
      await expect(tenants.createDatabase(server, otherDb, 'utf8mb4', owner)).rejects.toThrow(/already exists on db1\.example\.net and was not created by this install/);
      // Its password is still its own, it got no grant, and compensation leaves both alone.
      expect(await tenants.dropUser(server, stranger, otherDb, ['127.0.0.1'])).toEqual([`${other}@127.0.0.1`]);
      expect(await tenants.dropDatabase(server, otherDb, owner)).toBe('not-ours');
      const { mariadb } = readTestbed();
      const theirs = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: other, password: 'their-own' });
      await theirs.end();
      expect(await asAdmin(`SHOW GRANTS FOR '${other}'@'127.0.0.1'`)).toHaveLength(1);
      expect(await tenants.databaseExists(server, otherDb)).toBe(true);
    } finally {
      await asAdmin(`DROP USER IF EXISTS '${other}'@'127.0.0.1'; DROP DATABASE IF EXISTS ${otherDb}`);
    }
  });

  it('makes a new database and its user in one client call; a rerun, an existing database or account of its own, and anyone else\'s, as the careful path does', async () => {
    const fresh = `shop_n${suffix}`;
    const freshLogin = { user: `n${suffix}`, password: `n'w\\"; -- ${suffix}` };
    const other = `q${suffix}`;
    const otherDb = `shop_q${suffix}`;
    const calls = jest.spyOn(access.executorFor(server), 'run');
    try {
      expect(await tenants.createDatabaseWithUser(server, fresh, 'utf8mb4', owner, freshLogin, ['127.0.0.1', 'localhost'])).toBe('created');
      expect(calls).toHaveBeenCalledTimes(1);
      expect(await asAdmin(`SELECT SCHEMA_COMMENT AS c FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '${fresh}'`)).toEqual([{ c: ownerComment(owner) }]);
      const { mariadb } = readTestbed();
      const theirs = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: freshLogin.user, password: freshLogin.password, database: fresh });
      await theirs.query('CREATE TABLE t (id INT)');
      await theirs.end();
      // A rerun (a crash after the call): the database and accounts are its own.
      expect(await tenants.createDatabaseWithUser(server, fresh, 'utf8mb4', owner, freshLogin, ['127.0.0.1', 'localhost'])).toBe('ours');
      // Only the account is missing (made by hand away): the database is kept, the account made.
      await asAdmin(`DROP USER '${freshLogin.user}'@'localhost'`);
      expect(await tenants.createDatabaseWithUser(server, fresh, 'utf8mb4', owner, freshLogin, ['127.0.0.1', 'localhost'])).toBe('ours');
      expect(await asAdmin(`SELECT COUNT(*) AS n FROM mysql.user WHERE User = '${freshLogin.user}'`)).toEqual([{ n: 2 }]);
      // Someone else's database, or someone else's account: a conflict, theirs untouched, no grant given.
      await asAdmin(`CREATE DATABASE ${otherDb}; CREATE USER '${other}'@'127.0.0.1' IDENTIFIED BY 'their-own'`);
      await expect(tenants.createDatabaseWithUser(server, otherDb, 'utf8mb4', owner, { user: `r${suffix}`, password: 'x' }, ['127.0.0.1'])).rejects.toBeInstanceOf(NameConflictError);
      expect(await tenants.userExists(server, `r${suffix}`)).toBe(false);
      const lone = `shop_l${suffix}`;
      await expect(tenants.createDatabaseWithUser(server, lone, 'utf8mb4', owner, { user: other, password: 'an install password' }, ['127.0.0.1'])).rejects.toBeInstanceOf(NameConflictError);
      expect(await asAdmin(`SHOW GRANTS FOR '${other}'@'127.0.0.1'`)).toHaveLength(1);
      // The database this call made before the account refused it is the install's: its compensation drops it.
      expect(await tenants.dropDatabase(server, lone, owner)).toBe('dropped');
    } finally {
      calls.mockRestore();
      await asAdmin(`DROP USER IF EXISTS '${other}'@'127.0.0.1', '${freshLogin.user}'@'127.0.0.1', '${freshLogin.user}'@'localhost'; DROP DATABASE IF EXISTS ${otherDb}; DROP DATABASE IF EXISTS ${fresh}`);
    }
  });

  it('escapes _ and % in a grant: a grant on shop_x is not one on shopAx', async () => {
    expect(grantDatabase('shop_a')).toBe('`shop\\_a`');
    const lookalike = `shopx${db.slice(5)}`;
    await asAdmin(`CREATE DATABASE ${lookalike}`);
    try {
      const connection = await connect();
      try {
        await expect(connection.query(`CREATE TABLE ${lookalike}.t (id INT)`)).rejects.toThrow(/denied/);
      } finally {
        await connection.end();
      }
    } finally {
      await asAdmin(`DROP DATABASE IF EXISTS ${lookalike}`);
    }
  });

  it("keeps SQLite tenant databases for the embedded default's own server only: any other server is its real database server", async () => {
    const embedded = new TenantDatabases(access, { embedded: true } as EngineConfig);
    // A local server on the embedded default whose option file names a real MariaDB gets MariaDB.
    const real = `shop_e${suffix}`;
    expect(await embedded.createDatabase(server, real, 'utf8mb4', owner)).toBe('created');
    expect(await asAdmin(`SELECT SCHEMA_NAME AS n FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '${real}'`)).toEqual([{ n: real }]);
    expect(await embedded.dropDatabase(server, real, owner)).toBe('dropped');
    // Its own server says so (`sqlite:<dir>`): files there.
    const own = { ...server, dbOptionsFile: `sqlite:${join(base, 'tenant-databases')}` } as Server;
    expect(await embedded.createDatabase(own, real, 'utf8mb4', owner)).toBe('created');
    expect(existsSync(join(base, 'tenant-databases', `${real}.sqlite`))).toBe(true);
    expect(await embedded.createDatabase(own, real, 'utf8mb4', { installId: 1 }).catch((e: unknown) => e)).toBeInstanceOf(NameConflictError);
    // Anywhere else SQLite is refused, clearly.
    await expect(tenants.createDatabase(own, real, 'utf8mb4', owner)).rejects.toThrow(/only the embedded default's own server may/);
    await expect(embedded.createDatabase({ ...own, transport: 'ssh' } as Server, real, 'utf8mb4', owner)).rejects.toThrow(/only the embedded default's own server may/);
  });

  it('refuses hostile names before any SQL runs, and drops only what it created', async () => {
    for (const name of ['x`; DROP DATABASE mysql; --', 'Shop', '1abc', 'a b', '']) {
      expect(() => quoteIdentifier(name)).toThrow(/refused SQL identifier/);
      await expect(tenants.createDatabase(server, name, 'utf8mb4', owner)).rejects.toThrow(/refused SQL identifier/);
    }
    await expect(tenants.createUser(server, login, db, ["'; DROP USER root; --"])).rejects.toThrow(/refused client host/);
    // Another install's claim on the same database is refused; its own drop goes through.
    expect(await tenants.dropDatabase(server, db, { installId: 1 })).toBe('not-ours');
    expect(await tenants.dropUser(server, login, db, ['127.0.0.1'])).toEqual([]);
    expect(await tenants.dropDatabase(server, db, owner)).toBe('dropped');
    expect(await tenants.dropDatabase(server, db, owner)).toBe('absent');
    expect(await tenants.databaseExists(server, db)).toBe(false);
    expect(await tenants.userExists(server, user)).toBe(false);
    expect(await tenants.databaseExists(server, 'mysql')).toBe(true);
  });
});
