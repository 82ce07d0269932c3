import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import type { Server } from '@app/catalog';
import type { EngineConfig } from '@app/config';
import { prepareSql, splitSql, SqlStatementError, TenantDatabases } from '@app/databases';
import { ServerAccess } from '@app/hosts';
import { writeDbOptionsFile } from '../support/tenant-db-server.js';
import { readTestbed } from '../support/testbed.js';

/** A shop's dump in its own dialect, through TenantDatabases.runStatements on the testbed's MariaDB, as the build saga loads it. */
describe("a shop's own SQL dialect (real MariaDB through the mariadb client)", () => {
  const base = mkdtempSync(join(tmpdir(), 'sql-dialect-'));
  const access = new ServerAccess({ sshKeyPath: null } as unknown as EngineConfig);
  const tenants = new TenantDatabases(access, { embedded: false } as EngineConfig);
  const owner = { installId: 4343 };
  const server = { id: 1, hostname: 'db1.example.net', transport: 'local', dbOptionsFile: writeDbOptionsFile(base) } as unknown as Server;
  const suffix = Math.random().toString(36).slice(2, 8);
  const db = `shop_d${suffix}`;
  const login = { user: `d${suffix}`, password: `pw-${suffix}` };
  let connection: mysql.Connection;
  const query = async (sql: string) => (await connection.query(sql))[0] as Record<string, unknown>[];

  beforeAll(async () => {
    await tenants.createDatabase(server, db, 'utf8mb4', owner);
    await tenants.createUser(server, login, db, await tenants.accountHosts(server, ['127.0.0.1']));
    const { mariadb } = readTestbed();
    connection = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: login.user, password: login.password, database: db, charset: 'utf8mb4' });
  });

  afterAll(async () => {
    await connection?.end();
    await tenants.dropUser(server, login, db, await tenants.accountHosts(server, ['127.0.0.1'])).catch(() => undefined);
    await tenants.dropDatabase(server, db, owner).catch(() => undefined);
    access.onModuleDestroy();
    rmSync(base, { recursive: true, force: true });
  });

  // As OpenCart ships it: rulers of dashes MySQL would reject, `oc_` in every table name, routines under DELIMITER.
  const dump = [
    '-- ----------------------------',
    '-- Table structure for oc_setting',
    '-- ----------------------------',
    'DROP TABLE IF EXISTS `oc_setting`;',
    'CREATE TABLE `oc_setting` (',
    '  `key` varchar(64) NOT NULL,',
    '--------------------------------',
    '  `value` text NOT NULL,',
    '  PRIMARY KEY (`key`)',
    ') ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;',
    '',
    "INSERT INTO `oc_setting` (`key`, `value`) VALUES ('config_name', 'Zum Bären 🛒'), ('config_note', 'oc_setting; -- not a comment\n-- nor this'), ('config_mode', @@SESSION.sql_mode);",
    'CREATE TABLE oc_log (id int NOT NULL AUTO_INCREMENT PRIMARY KEY, message varchar(255) NOT NULL, short varchar(3) NOT NULL DEFAULT \'\') ENGINE=InnoDB;',
    '',
    'DELIMITER ;;',
    'CREATE TRIGGER oc_setting_log AFTER INSERT ON oc_setting FOR EACH ROW',
    'BEGIN',
    "  INSERT INTO oc_log (message) VALUES (CONCAT('set ', NEW.`key`, ';'));",
    "  INSERT INTO oc_log (message) VALUES ('a body; with semicolons;; and $$ too');",
    'END;;',
    'DELIMITER ;',
    '',
    'DELIMITER $$',
    'CREATE PROCEDURE oc_count_settings(OUT n INT)',
    'BEGIN',
    '  DECLARE dummy INT DEFAULT 0;',
    '  SELECT COUNT(*) INTO n FROM oc_setting;',
    "  SET dummy = LENGTH('x;y;;z');",
    'END $$',
    'DELIMITER ;',
    '',
    "INSERT INTO oc_setting (`key`, `value`) VALUES ('config_after', 'trigger fires');",
    "INSERT INTO oc_log (message, short) VALUES ('too long for its column', 'abcdef');",
  ].join('\n');
  const preparation = { stripLinePrefixes: ['--'], tablePrefix: { placeholder: 'oc_', value: 'shop_' }, session: { sqlMode: 'NO_ENGINE_SUBSTITUTION', charset: 'utf8mb4' } };

  it('loads the dump unmodified: rulers dropped, prefix replaced, a trigger and a procedure whole, the session sql_mode, 4-byte UTF-8', async () => {
    // As it is, MySQL refuses the ruler inside CREATE TABLE: the reason for stripLinePrefixes.
    const raw = await tenants.runStatements(server, db, login, 'opencart.sql', splitSql(dump), preparation.session).catch((e: unknown) => e);
    expect(raw).toBeInstanceOf(SqlStatementError);
    expect(raw).toMatchObject({ line: 5 });
    await tenants.resetDatabase(server, db, 'utf8mb4', owner);

    await tenants.runStatements(server, db, login, 'opencart.sql', splitSql(prepareSql(dump, preparation)), preparation.session);
    expect((await query('SHOW TABLES')).map((r) => Object.values(r)[0]).sort()).toEqual(['shop_log', 'shop_setting']);
    const settings = await query('SELECT `key`, `value`, HEX(`value`) AS hex FROM shop_setting ORDER BY `key`');
    expect(settings.map((r) => [r.key, r.value])).toEqual([
      ['config_after', 'trigger fires'],
      ['config_mode', 'NO_ENGINE_SUBSTITUTION'],
      ['config_name', 'Zum Bären 🛒'],
      ['config_note', 'oc_setting; -- not a comment\n-- nor this'],
    ]);
    // The bytes themselves: one 4-byte character, not four mangled ones.
    expect(settings.find((r) => r.key === 'config_name')!.hex).toBe(Buffer.from('Zum Bären 🛒').toString('hex').toUpperCase());
    // The trigger's body arrived whole (both inserts, the semicolons inside its strings); the non-strict mode truncated instead of failing.
    expect((await query('SELECT message, short FROM shop_log ORDER BY id')).map((r) => [r.message, r.short])).toEqual([
      ['set config_after;', ''],
      ['a body; with semicolons;; and $$ too', ''],
      ['too long for its column', 'abc'],
    ]);
    await connection.query('CALL shop_count_settings(@n)');
    expect(await query('SELECT @n AS n')).toEqual([{ n: 4 }]);
    const routines = await query(`SELECT ROUTINE_NAME AS name, SQL_MODE AS mode, ROUTINE_DEFINITION AS body FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '${db}'`);
    expect(routines).toEqual([{ name: 'shop_count_settings', mode: 'NO_ENGINE_SUBSTITUTION', body: expect.stringContaining("SET dummy = LENGTH('x;y;;z');\nEND") }]);
  });

  it('keeps a strict session strict, and names the line of the statement in the shop\'s file after dropped lines', async () => {
    await tenants.resetDatabase(server, db, 'utf8mb4', owner);
    const strict = { sqlMode: 'STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION', charset: 'utf8mb4' };
    const error = await tenants.runStatements(server, db, login, 'opencart.sql', splitSql(prepareSql(dump, { ...preparation, session: strict })), strict).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SqlStatementError);
    // Line 34 of the file: the rulers dropped still count, and so does the newline inside a string literal.
    expect(error).toMatchObject({ file: 'opencart.sql', line: 34 });
    expect((error as Error).message).toMatch(/Data too long for column 'short'/);
  });

  it('sends the file as UTF-8 whatever the locale, when the manifest names no charset', async () => {
    await tenants.resetDatabase(server, db, 'utf8mb4', owner);
    const sql = "CREATE TABLE shop_t (v varchar(16)) DEFAULT CHARSET=utf8mb4;\nINSERT INTO shop_t VALUES ('€ 🍺 ü');\n";
    await tenants.runStatements(server, db, login, 'plain.sql', splitSql(sql));
    expect(await query('SELECT v, CHAR_LENGTH(v) AS n FROM shop_t')).toEqual([{ v: '€ 🍺 ü', n: 5 }]);
  });
});
