import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { Inject, Injectable } from '@nestjs/common';
import type { Server } from '@app/catalog';
import { sqlStringLiteral } from '@app/common';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { CommandFailedError, ServerAccess } from '@app/hosts';
import type { SqlStatement } from './sql-split.js';
import { SqliteTenantDatabases } from './sqlite-tenant-databases.js';

/** Database and user names the engine creates: what MySQL accepts unquoted, quoted anyway. */
const IDENTIFIER = /^[a-z][a-z0-9_]{0,63}$/;
const USER = /^[a-z][a-z0-9_]{0,31}$/;
/** Client hosts a tenant user may connect from: an IP, a hostname, `localhost` or `%`-patterns of them. */
const USER_HOST = /^[A-Za-z0-9.:%_-]{1,255}$/;
/** Ends each statement fed to the client; statements may contain `;` (routines). */
const DELIMITER = '$$engine$$';

export class SqlStatementError extends Error {
  override name = 'SqlStatementError';
  /** Running the same statement again gives the same error (and re-runs the ones before it): never retried blindly. */
  readonly permanent = true;
  constructor(
    readonly server: string,
    readonly file: string,
    readonly line: number,
    readonly statement: string,
    readonly serverMessage: string,
  ) {
    super(`${file} line ${line} on ${server}: ${serverMessage}; statement: ${statement.length > 500 ? `${statement.slice(0, 500)}...` : statement}`);
  }
}

export interface SessionSettings {
  sqlMode?: string;
  charset?: string;
}

export function quoteIdentifier(name: string, pattern = IDENTIFIER): string {
  if (!pattern.test(name)) throw new Error(`refused SQL identifier ${JSON.stringify(name)}`);
  return `\`${name}\``;
}

/** A MySQL string literal (the one escaping, shared with SQL templates). */
export const quoteString = sqlStringLiteral;

export function sqlChecksum(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/**
 * Tenant databases on a database server of the inventory, through the
 * `mariadb` client run on that server by the executor: the admin
 * connection comes from the server's own option file (`dbOptionsFile`) or
 * the client's defaults, so the engine holds no database admin password.
 * SQL goes on stdin, never in an argument; identifiers are checked and
 * quoted, strings escaped.
 */
@Injectable()
export class TenantDatabases {
  private readonly embedded: SqliteTenantDatabases | null;

  constructor(
    private readonly access: ServerAccess,
    @Inject(ENGINE_CONFIG) config: EngineConfig,
  ) {
    // The embedded default's one server is this machine, which has no MySQL: SQLite files stand in.
    this.embedded = config.embedded ? new SqliteTenantDatabases(join(config.varDir, 'tenant-databases')) : null;
  }

  private sqlite(server: Server): SqliteTenantDatabases | null {
    return this.embedded && server.transport === 'local' ? this.embedded : null;
  }

  async databaseExists(server: Server, name: string): Promise<boolean> {
    quoteIdentifier(name);
    const sqlite = this.sqlite(server);
    if (sqlite) return sqlite.databaseExists(name);
    const out = await this.sql(server, `SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ${quoteString(name)};`);
    return out.trim() === name;
  }

  async userExists(server: Server, user: string): Promise<boolean> {
    const sqlite = this.sqlite(server);
    if (sqlite) return sqlite.userExists(quoteIdentifier(user, USER).slice(1, -1));
    const out = await this.sql(server, `SELECT COUNT(*) FROM mysql.user WHERE User = ${quoteString(user)};`);
    return Number(out.trim()) > 0;
  }

  async createDatabase(server: Server, name: string, charset = 'utf8mb4'): Promise<void> {
    const sqlite = this.sqlite(server);
    if (sqlite) return sqlite.createDatabase(quoteIdentifier(name).slice(1, -1));
    await this.sql(server, `CREATE DATABASE IF NOT EXISTS ${quoteIdentifier(name)} CHARACTER SET ${quoteIdentifier(charset, /^[a-z0-9_]{1,32}$/)};`);
  }

  async dropDatabase(server: Server, name: string): Promise<void> {
    const sqlite = this.sqlite(server);
    if (sqlite) return sqlite.dropDatabase(quoteIdentifier(name).slice(1, -1));
    await this.sql(server, `DROP DATABASE IF EXISTS ${quoteIdentifier(name)};`);
  }

  /** Creates (or resets to this password) the user for each client host, with every privilege on its database only. */
  async createUser(server: Server, user: string, password: string, database: string, hosts: readonly string[]): Promise<void> {
    const statements = hosts.flatMap((host) => {
      if (!USER_HOST.test(host)) throw new Error(`refused client host ${JSON.stringify(host)}`);
      const account = `${quoteString(user)}@${quoteString(host)}`;
      return [
        `CREATE USER IF NOT EXISTS ${account} IDENTIFIED BY ${quoteString(password)};`,
        `ALTER USER ${account} IDENTIFIED BY ${quoteString(password)};`,
        `GRANT ALL PRIVILEGES ON ${quoteIdentifier(database)}.* TO ${account};`,
      ];
    });
    quoteIdentifier(user, USER);
    const sqlite = this.sqlite(server);
    if (sqlite) return sqlite.createUser(user, quoteIdentifier(database).slice(1, -1));
    // Passwords go on stdin only: never in ps, never in an error message.
    await this.sql(server, statements.join('\n'), { redact: true });
  }

  async dropUser(server: Server, user: string, hosts: readonly string[]): Promise<void> {
    quoteIdentifier(user, USER);
    const sqlite = this.sqlite(server);
    if (sqlite) return sqlite.dropUser(user);
    if (hosts.length === 0) return;
    for (const host of hosts) if (!USER_HOST.test(host)) throw new Error(`refused client host ${JSON.stringify(host)}`);
    await this.sql(server, `DROP USER IF EXISTS ${hosts.map((h) => `${quoteString(user)}@${quoteString(h)}`).join(', ')};`);
  }

  /**
   * Runs a file's statements in the tenant database in one client call,
   * stopping at the first error, which names the file, the statement's line
   * in it, the statement and the server's message.
   */
  async runStatements(server: Server, database: string, file: string, statements: readonly SqlStatement[], session: SessionSettings = {}): Promise<void> {
    const sqlite = this.sqlite(server);
    if (sqlite) {
      const failure = sqlite.runStatements(quoteIdentifier(database).slice(1, -1), file, statements);
      if (failure) throw new SqlStatementError(server.hostname, failure.file, failure.line, failure.statement, failure.message);
      return;
    }
    const lines: string[] = [];
    const setup: string[] = [];
    if (session.charset) setup.push(`SET NAMES ${quoteIdentifier(session.charset, /^[a-z0-9_]{1,32}$/)}`);
    if (session.sqlMode !== undefined) {
      if (!/^[A-Z_]*(,[A-Z_]+)*$/.test(session.sqlMode)) throw new Error(`refused sql_mode ${JSON.stringify(session.sqlMode)}`);
      setup.push(`SET SESSION sql_mode = ${quoteString(session.sqlMode)}`);
    }
    for (const s of setup) lines.push(s, DELIMITER);
    const startLine: number[] = [];
    for (const statement of statements) {
      startLine.push(lines.length + 1);
      lines.push(...statement.text.split('\n'), DELIMITER);
    }
    try {
      await this.sql(server, `${lines.join('\n')}\n`, { database, delimiter: DELIMITER });
    } catch (error) {
      if (!(error instanceof CommandFailedError)) throw error;
      const match = /ERROR \d+ \([0-9A-Z]+\) at line (\d+)[^:]*: (.*)/s.exec(error.stderr);
      if (!match) throw error;
      const failedLine = Number(match[1]);
      let index = -1;
      for (let i = 0; i < startLine.length; i++) if (startLine[i]! <= failedLine) index = i;
      if (index === -1) throw new SqlStatementError(server.hostname, file, 0, setup.join('; '), match[2]!.trim());
      const statement = statements[index]!;
      throw new SqlStatementError(server.hostname, file, statement.line, statement.text, match[2]!.trim());
    }
  }

  /** SQL on the admin connection; returns what the client printed (batch mode, no column names). */
  private async sql(server: Server, sql: string, options: { database?: string; delimiter?: string; redact?: boolean } = {}): Promise<string> {
    const argv = [
      'mariadb',
      ...(server.dbOptionsFile ? [`--defaults-extra-file=${server.dbOptionsFile}`] : []),
      '--batch',
      '--skip-column-names',
      ...(options.delimiter ? [`--delimiter=${options.delimiter}`] : []),
      ...(options.database ? [`--database=${quoteIdentifier(options.database).slice(1, -1)}`] : []),
    ];
    const executor = this.access.executorFor(server);
    const result = await executor.run(server, argv, { input: sql, timeoutMs: 10 * 60_000 });
    if (result.exitCode !== 0) {
      throw new CommandFailedError(server.hostname, ['mariadb', ...(options.database ? [options.database] : [])], result.exitCode, options.redact ? redact(result.stderr) : result.stderr);
    }
    return result.stdout;
  }
}

function redact(stderr: string): string {
  return stderr.replace(/IDENTIFIED BY '(?:[^'\\]|\\.)*'/g, "IDENTIFIED BY '***'");
}
