import { createHash } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import type { Server } from '@app/catalog';
import { sqlStringLiteral } from '@app/common';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { CommandFailedError, ServerAccess } from '@app/hosts';
import { planParallelTables } from './sql-parallel.js';
import type { SqlStatement } from './sql-split.js';
import { SqliteTenantDatabases } from './sqlite-tenant-databases.js';

/** Database and user names the engine creates: what MySQL accepts unquoted, quoted anyway. */
const IDENTIFIER = /^[a-z][a-z0-9_]{0,63}$/;
const USER = /^[a-z][a-z0-9_]{0,31}$/;
/** Client hosts a tenant user may connect from: an IP, a hostname or `localhost` (no `%` or `_` patterns: an account is for one host). */
const USER_HOST = /^[A-Za-z0-9.:-]{1,255}$/;
const CHARSET = /^[a-z0-9_]{1,32}$/;
/** Ends each statement fed to the client; statements may contain `;` (routines). */
const DELIMITER = '$$engine$$';
/** The embedded default's own server keeps its tenant databases as SQLite files: `dbOptionsFile` is `sqlite:<dir>`. */
export const SQLITE_TENANT_DATABASES = 'sqlite:';

/**
 * Finds the client (`mariadb`, else `mysql`) and, from the admin option
 * file, only how to reach the server (host, port, socket): the password in
 * that file never leaves the server.
 */
const CONNECTION_SCRIPT = String.raw`
client=$(command -v mariadb || command -v mysql) || { echo 'no mariadb or mysql client on this server' >&2; exit 20; }
echo "client $client"
[ -n "$1" ] || exit 0
[ -r "$1" ] || { echo "cannot read $1" >&2; exit 21; }
awk '
  /^[ \t]*\[/ { section = $0; gsub(/[ \t\[\]]/, "", section); next }
  section != "client" && section != "mysql" && section != "mariadb" && section != "client-mariadb" { next }
  /^[ \t]*(host|port|socket)[ \t]*=/ {
    key = $0; sub(/[ \t]*=.*/, "", key); gsub(/[ \t]/, "", key)
    value = $0; sub(/^[^=]*=[ \t]*/, "", value); sub(/[ \t]+$/, "", value); gsub(/^"|"$/, "", value)
    print key " " value
  }' "$1"
`;

/** A tenant database or user that exists and was not created by this install: never adopted, never dropped. */
export class NameConflictError extends Error {
  override name = 'NameConflictError';
  /** Trying again cannot help: another name is needed. */
  readonly permanent = true;
  readonly code = 'NAME_CONFLICT';
}

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

/** Who creates a tenant database or user: what it carries proves "created by this install". */
export interface TenantOwner {
  installId: number;
}

/** The install's own account: tenant SQL runs as it, never as the admin. */
export interface TenantLogin {
  user: string;
  password: string;
}

/** How a database server is reached, as far as templates and the tenant's own connections need it. */
export interface DatabaseConnection {
  /** The client found on the server (`mariadb` or `mysql`), by path. */
  client: string;
  /** From the admin option file; null: the client's default (socket). */
  host: string | null;
  port: number | null;
  socket: string | null;
  /** The account host of a connection made on the server itself the same way (`localhost` for the socket). */
  localHost: string;
}

export function quoteIdentifier(name: string, pattern = IDENTIFIER): string {
  if (!pattern.test(name)) throw new Error(`refused SQL identifier ${JSON.stringify(name)}`);
  return `\`${name}\``;
}

/**
 * A database name in a GRANT's `db.*`, where `_` and `%` are wildcards: escaped, so a grant on `shop_a` is not one on `shopXa`.
 */
export function grantDatabase(name: string): string {
  return quoteIdentifier(name).replace(/[_%]/g, (c) => `\\${c}`);
}

/** A MySQL string literal (the one escaping, shared with SQL templates). */
export const quoteString = sqlStringLiteral;

export function sqlChecksum(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** The comment a database this engine creates carries: who created it. */
export function ownerComment(owner: TenantOwner): string {
  return `shop-engine install ${owner.installId}`;
}

/** A table the engine keeps in a tenant database: the SQL update files applied, written in the same transaction as each file's end. */
export const UPDATE_MARKERS = 'shop_engine_updates';

/**
 * Statements around a file's own: the marker table made if missing (before:
 * its DDL commits on its own), and the file's marker row (after: it commits
 * with the file's last transaction, so a file whose end committed is known
 * to have run even when the catalog never heard of it).
 */
export function updateMarkerStatements(file: string, checksum: string): { before: SqlStatement; after: SqlStatement } {
  return {
    before: { text: `CREATE TABLE IF NOT EXISTS ${UPDATE_MARKERS} (file VARCHAR(255) NOT NULL PRIMARY KEY, checksum VARCHAR(64) NOT NULL)`, line: 0 },
    after: { text: `INSERT INTO ${UPDATE_MARKERS} (file, checksum) VALUES (${quoteString(file)}, ${quoteString(checksum)})`, line: 0 },
  };
}

/**
 * Tenant databases on a database server of the inventory (MariaDB 10.5+),
 * through the client run on that server by the executor. Creating, dropping
 * and granting use the admin connection from the server's own option file
 * (`dbOptionsFile`), so the engine holds no admin password; the shop's own
 * SQL (updates, templates) runs as the install's user, with the client in
 * `--sandbox --binary-mode` (no client commands such as `\!`). Names are
 * checked and quoted, strings escaped, SQL on stdin. Nothing is adopted:
 * a database carries its creator in its comment and a user is the install's
 * only if it has the install's password; what is not the install's is a
 * conflict, and never dropped.
 */
@Injectable()
export class TenantDatabases {
  private readonly connections = new Map<number, Promise<DatabaseConnection>>();

  constructor(
    private readonly access: ServerAccess,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
  ) {}

  /**
   * SQLite files stand in for MySQL only on the embedded default's own
   * server (its `dbOptionsFile` says `sqlite:<dir>`); any other server is a
   * real database server, whatever the catalog is.
   */
  sqlite(server: Server): SqliteTenantDatabases | null {
    if (!server.dbOptionsFile?.startsWith(SQLITE_TENANT_DATABASES)) return null;
    if (!this.config.embedded || server.transport !== 'local') {
      throw new Error(`${server.hostname} says its tenant databases are SQLite files, which only the embedded default's own server may`);
    }
    return new SqliteTenantDatabases(server.dbOptionsFile.slice(SQLITE_TENANT_DATABASES.length));
  }

  /** The client and how the server is reached (cached per server; nothing secret). */
  connection(server: Server): Promise<DatabaseConnection> {
    if (this.sqlite(server)) return Promise.resolve({ client: 'sqlite', host: null, port: null, socket: null, localHost: 'localhost' });
    let known = this.connections.get(server.id);
    if (!known) {
      known = this.readConnection(server);
      this.connections.set(server.id, known);
      known.catch(() => this.connections.delete(server.id));
    }
    return known;
  }

  private async readConnection(server: Server): Promise<DatabaseConnection> {
    const out = await this.access.executorFor(server).mustRun(server, ['sh', '-c', CONNECTION_SCRIPT, 'db-connection', server.dbOptionsFile ?? '']);
    const values = new Map(out.split('\n').filter(Boolean).map((line) => [line.slice(0, line.indexOf(' ')), line.slice(line.indexOf(' ') + 1)] as const));
    const client = values.get('client');
    if (!client || !/^\/[A-Za-z0-9._\/-]+$/.test(client)) throw new Error(`no usable mariadb or mysql client on ${server.hostname}`);
    const host = values.get('host') ?? null;
    const port = values.has('port') ? Number(values.get('port')) : null;
    const socket = values.get('socket') ?? null;
    if (host !== null && !USER_HOST.test(host)) throw new Error(`refused database host ${JSON.stringify(host)} in the option file of ${server.hostname}`);
    if (port !== null && !(Number.isInteger(port) && port > 0 && port < 65536)) throw new Error(`refused database port in the option file of ${server.hostname}`);
    if (socket !== null && !/^\/[A-Za-z0-9._\/-]+$/.test(socket)) throw new Error(`refused database socket in the option file of ${server.hostname}`);
    // A socket (or no host) arrives as `localhost`; TCP to an address arrives from that address.
    const tcp = host !== null && host !== 'localhost' && socket === null;
    return { client, host, port, socket, localHost: tcp ? host : 'localhost' };
  }

  /** The hosts a tenant account is made for: the install's servers, and the database server itself (tenant SQL runs there). */
  async accountHosts(server: Server, installHosts: readonly string[]): Promise<string[]> {
    const { localHost } = await this.connection(server);
    return [...new Set([...installHosts, localHost])];
  }

  async databaseExists(server: Server, name: string): Promise<boolean> {
    quoteIdentifier(name);
    const sqlite = this.sqlite(server);
    if (sqlite) return sqlite.databaseExists(name);
    const out = await this.admin(server, `SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ${quoteString(name)};`);
    return out.trim() === name;
  }

  async userExists(server: Server, user: string): Promise<boolean> {
    quoteIdentifier(user, USER);
    const sqlite = this.sqlite(server);
    if (sqlite) return sqlite.userExists(user);
    const out = await this.admin(server, `SELECT COUNT(*) FROM mysql.user WHERE User = ${quoteString(user)};`);
    return Number(out.trim()) > 0;
  }

  /**
   * Creates the database, its comment naming the install. One that exists
   * already is the install's (a run that crashed after creating it) only if
   * its comment says so: otherwise NameConflictError, and it is left alone.
   */
  async createDatabase(server: Server, name: string, charset: string, owner: TenantOwner): Promise<'created' | 'ours'> {
    quoteIdentifier(name);
    quoteIdentifier(charset, CHARSET);
    const sqlite = this.sqlite(server);
    if (sqlite) {
      const outcome = sqlite.createDatabase(name, owner.installId);
      if (outcome === 'not-ours') throw this.conflict(server, `database ${name}`);
      return outcome;
    }
    const comment = await this.schemaComment(server, name);
    if (comment === null) {
      try {
        await this.admin(server, `CREATE DATABASE ${quoteIdentifier(name)} CHARACTER SET ${quoteIdentifier(charset, CHARSET)} COMMENT ${quoteString(ownerComment(owner))};`);
        return 'created';
      } catch (error) {
        // Created by someone else meanwhile: judged below like any database that exists.
        if (!(error instanceof CommandFailedError && /ERROR 1007/.test(error.stderr))) throw error;
        if ((await this.schemaComment(server, name)) === ownerComment(owner)) return 'ours';
        throw this.conflict(server, `database ${name}`);
      }
    }
    if (comment === ownerComment(owner)) return 'ours';
    throw this.conflict(server, `database ${name}`);
  }

  /**
   * A new install's database and its user in one client call (a new
   * database, new accounts: `CREATE DATABASE` and `CREATE USER` refuse what
   * exists, so nothing is adopted), instead of four (the comment, the
   * database, the accounts, the users). When the database or an account
   * exists already (a run that crashed after making them, or someone
   * else's), the client stops at that statement and the careful path
   * decides as createDatabase and createUser do: the install's own are
   * kept, anyone else's is a conflict, left alone.
   */
  async createDatabaseWithUser(server: Server, name: string, charset: string, owner: TenantOwner, login: TenantLogin, hosts: readonly string[]): Promise<'created' | 'ours'> {
    quoteIdentifier(name);
    quoteIdentifier(charset, CHARSET);
    quoteIdentifier(login.user, USER);
    for (const host of hosts) if (!USER_HOST.test(host)) throw new Error(`refused client host ${JSON.stringify(host)}`);
    if (this.sqlite(server)) {
      const created = await this.createDatabase(server, name, charset, owner);
      await this.createUser(server, login, name, hosts);
      return created;
    }
    const statements = [
      `CREATE DATABASE ${quoteIdentifier(name)} CHARACTER SET ${quoteIdentifier(charset, CHARSET)} COMMENT ${quoteString(ownerComment(owner))};`,
      ...hosts.flatMap((host) => {
        const account = `${quoteString(login.user)}@${quoteString(host)}`;
        return [`CREATE USER ${account} IDENTIFIED BY ${quoteString(login.password)};`, `GRANT ALL PRIVILEGES ON ${grantDatabase(name)}.* TO ${account};`];
      }),
    ];
    let created: 'created' | 'ours' = 'created';
    try {
      await this.admin(server, statements.join('\n'), { secrets: [login.password] });
      return created;
    } catch (error) {
      // 1007: the database exists (nothing else ran); 1396: an account exists (the database is this call's).
      const code = error instanceof CommandFailedError ? /ERROR (1007|1396)/.exec(error.stderr)?.[1] : undefined;
      if (!code) throw error;
      if (code === '1007') created = await this.createDatabase(server, name, charset, owner);
    }
    await this.createUser(server, login, name, hosts);
    return created;
  }

  /**
   * Empties the install's database for a fresh start (drop and create in one
   * client call, its owner's comment kept); one that is not the install's is
   * a conflict, left alone. One query says whose it is and whether it holds
   * anything: a new install's database, just created, is already what a
   * reset makes and is left as it is (no DDL, no second client call).
   */
  async resetDatabase(server: Server, name: string, charset: string, owner: TenantOwner): Promise<void> {
    quoteIdentifier(name);
    quoteIdentifier(charset, CHARSET);
    const sqlite = this.sqlite(server);
    if (sqlite) {
      if (sqlite.dropDatabase(name, owner.installId) === 'not-ours' || sqlite.createDatabase(name, owner.installId) === 'not-ours') throw this.conflict(server, `database ${name}`);
      return;
    }
    const schema = quoteString(name);
    const out = await this.admin(
      server,
      `SELECT CONCAT('=', SCHEMA_COMMENT), DEFAULT_CHARACTER_SET_NAME, ` +
        `(SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ${schema}) + ` +
        `(SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ${schema}) + ` +
        `(SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ${schema}) ` +
        `FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ${schema};`,
    );
    if (out !== '') {
      const [comment, existingCharset, objects] = out.replace(/\n$/, '').split('\t');
      if (comment!.slice(1) !== ownerComment(owner)) throw this.conflict(server, `database ${name}`);
      if (existingCharset === charset && objects === '0') return;
    }
    await this.admin(
      server,
      `DROP DATABASE IF EXISTS ${quoteIdentifier(name)};\nCREATE DATABASE ${quoteIdentifier(name)} CHARACTER SET ${quoteIdentifier(charset, CHARSET)} COMMENT ${quoteString(ownerComment(owner))};`,
    );
  }

  /** Drops the database if it is the install's; one that is not is left alone (and said so). */
  async dropDatabase(server: Server, name: string, owner: TenantOwner): Promise<'dropped' | 'absent' | 'not-ours'> {
    quoteIdentifier(name);
    const sqlite = this.sqlite(server);
    if (sqlite) return sqlite.dropDatabase(name, owner.installId);
    const comment = await this.schemaComment(server, name);
    if (comment === null) return 'absent';
    if (comment !== ownerComment(owner)) return 'not-ours';
    await this.admin(server, `DROP DATABASE IF EXISTS ${quoteIdentifier(name)};`);
    return 'dropped';
  }

  /** The database's comment ('' when it has none), or null when there is no such database: one query says both. */
  private async schemaComment(server: Server, name: string): Promise<string | null> {
    const out = await this.admin(server, `SELECT CONCAT('=', SCHEMA_COMMENT) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ${quoteString(name)};`);
    return out === '' ? null : out.replace(/\n$/, '').slice(1);
  }

  /**
   * The user for each client host, with every privilege on its database
   * only (`readOnly`: SELECT only, as the search indexer reads). An account
   * that exists already is the install's only if it has the install's
   * password (a run that crashed after creating it): any other is a
   * conflict, never taken over (no `IF NOT EXISTS`, no `ALTER USER`).
   */
  async createUser(server: Server, { user, password }: TenantLogin, database: string, hosts: readonly string[], options: { readOnly?: boolean } = {}): Promise<void> {
    quoteIdentifier(user, USER);
    quoteIdentifier(database);
    for (const host of hosts) if (!USER_HOST.test(host)) throw new Error(`refused client host ${JSON.stringify(host)}`);
    const sqlite = this.sqlite(server);
    if (sqlite) {
      if (sqlite.createUser(user, database) === 'not-ours') throw this.conflict(server, `database user ${user}`);
      return;
    }
    // One query says which accounts exist and which of them have the install's password; one call makes the rest and grants.
    const existing = await this.accounts(server, user, password, hosts);
    const foreign = hosts.filter((h) => existing.get(h) === false);
    if (foreign.length > 0) throw this.conflict(server, `database user ${user}@${foreign[0]}`);
    const statements = hosts.flatMap((host) => {
      const account = `${quoteString(user)}@${quoteString(host)}`;
      // Passwords go on stdin only: never in ps, never in an error message.
      return [...(existing.has(host) ? [] : [`CREATE USER ${account} IDENTIFIED BY ${quoteString(password)};`]), `GRANT ${options.readOnly ? 'SELECT' : 'ALL PRIVILEGES'} ON ${grantDatabase(database)}.* TO ${account};`];
    });
    if (statements.length > 0) await this.admin(server, statements.join('\n'), { secrets: [password] });
  }

  /** Drops the accounts of the install (those with its password); others of that name are left alone. Returns those left. */
  async dropUser(server: Server, { user, password }: TenantLogin, database: string, hosts: readonly string[]): Promise<string[]> {
    quoteIdentifier(user, USER);
    const sqlite = this.sqlite(server);
    if (sqlite) return sqlite.dropUser(user, database) === 'not-ours' ? [user] : [];
    for (const host of hosts) if (!USER_HOST.test(host)) throw new Error(`refused client host ${JSON.stringify(host)}`);
    const existing = await this.accounts(server, user, password, hosts);
    const ours = hosts.filter((h) => existing.get(h) === true);
    if (ours.length > 0) await this.admin(server, `DROP USER ${ours.map((h) => `${quoteString(user)}@${quoteString(h)}`).join(', ')};`);
    return hosts.filter((h) => existing.get(h) === false).map((h) => `${user}@${h}`);
  }

  /** Which of `names` exist on the server (one query: a database move checks hundreds). */
  async databasesPresent(server: Server, names: readonly string[]): Promise<Set<string>> {
    for (const name of names) quoteIdentifier(name);
    const sqlite = this.sqlite(server);
    if (sqlite) return new Set(names.filter((n) => sqlite.databaseExists(n)));
    if (names.length === 0) return new Set();
    const out = await this.admin(server, `SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME IN (${names.map(quoteString).join(', ')});`);
    return new Set(out.split('\n').filter(Boolean));
  }

  /**
   * Per login, the hosts among its `hosts` for which it has no account on the
   * server, or one with another password (a replica checked before a
   * database move): one query for all of them.
   */
  async accountsLacking(server: Server, wanted: readonly { login: TenantLogin; hosts: readonly string[] }[]): Promise<string[][]> {
    for (const { login, hosts } of wanted) {
      quoteIdentifier(login.user, USER);
      for (const host of hosts) if (!USER_HOST.test(host)) throw new Error(`refused client host ${JSON.stringify(host)}`);
    }
    const sqlite = this.sqlite(server);
    if (sqlite) return wanted.map(({ login, hosts }) => (sqlite.userExists(login.user) ? [] : [...hosts]));
    const asked = wanted.filter((w) => w.hosts.length > 0);
    if (asked.length === 0) return wanted.map(() => []);
    // Each user's password hashed by the server itself (PASSWORD()), compared with what its accounts hold.
    const hashes = asked.map(({ login }) => `WHEN ${quoteString(login.user)} THEN PASSWORD(${quoteString(login.password)})`).join(' ');
    const where = asked.map(({ login, hosts }) => `(User = ${quoteString(login.user)} AND Host IN (${hosts.map(quoteString).join(', ')}))`).join(' OR ');
    const out = await this.admin(server, `SELECT User, Host FROM mysql.user WHERE (${where}) AND plugin IN ('mysql_native_password', '') AND authentication_string = CASE User ${hashes} END;`, {
      secrets: asked.map((w) => w.login.password),
    });
    const ours = new Set(out.split('\n').filter(Boolean).map((line) => line.replace('\t', '@')));
    return wanted.map(({ login, hosts }) => hosts.filter((h) => !ours.has(`${login.user}@${h}`)));
  }

  /** The accounts of `user` for these hosts that exist: host → whether it has the install's password (mysql_native_password). */
  private async accounts(server: Server, user: string, password: string, hosts: readonly string[]): Promise<Map<string, boolean>> {
    if (hosts.length === 0) return new Map();
    const out = await this.admin(
      server,
      `SELECT Host, IF(plugin IN ('mysql_native_password', '') AND authentication_string = PASSWORD(${quoteString(password)}), 'ours', 'theirs') FROM mysql.user WHERE User = ${quoteString(user)} AND Host IN (${hosts.map(quoteString).join(', ')});`,
      { secrets: [password] },
    );
    return new Map(out.split('\n').filter(Boolean).map((line) => {
      const [host, whose] = line.split('\t');
      return [host!, whose === 'ours'] as const;
    }));
  }

  /**
   * The update markers a tenant database holds (file → checksum): what
   * `updateMarkerStatements` recorded in the same transaction as a file's
   * last statements. Empty without the table, and on SQLite tenants (the
   * embedded default, one process: nothing to resume there).
   */
  async updateMarkers(server: Server, database: string): Promise<Map<string, string>> {
    quoteIdentifier(database);
    if (this.sqlite(server)) return new Map();
    const out = await this.admin(
      server,
      `SELECT CONCAT(checksum, ' ', file) FROM ${quoteIdentifier(database)}.${UPDATE_MARKERS} WHERE EXISTS (SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = ${quoteString(database)} AND TABLE_NAME = ${quoteString(UPDATE_MARKERS)});`,
    ).catch((error: unknown) => {
      // No such table yet: no marker.
      if (error instanceof CommandFailedError && /doesn't exist|1146/.test(error.stderr)) return '';
      throw error;
    });
    // The checksum (hex) first, then the name (batch output escapes tabs: a space parts them).
    return new Map(out.split('\n').filter(Boolean).map((line) => [line.slice(line.indexOf(' ') + 1), line.slice(0, line.indexOf(' '))] as [string, string]));
  }

  /**
   * Runs a file's statements in the tenant database as the install's own
   * user, in one client call stopping at the first error, which names the
   * file, the statement's line in it, the statement and the server's message.
   */
  async runStatements(
    server: Server,
    database: string,
    login: TenantLogin,
    file: string,
    statements: readonly SqlStatement[],
    session: SessionSettings = {},
    options: { connections?: number } = {},
  ): Promise<void> {
    quoteIdentifier(database);
    quoteIdentifier(login.user, USER);
    const sqlite = this.sqlite(server);
    if (sqlite) {
      const failure = sqlite.runStatements(database, file, statements);
      if (failure) throw new SqlStatementError(server.hostname, failure.file, failure.line, failure.statement, failure.message);
      return;
    }
    const setup: string[] = [];
    if (session.charset) setup.push(`SET NAMES ${quoteIdentifier(session.charset, CHARSET)}`);
    if (session.sqlMode !== undefined) {
      if (!/^[A-Z_]*(,[A-Z_]+)*$/.test(session.sqlMode)) throw new Error(`refused sql_mode ${JSON.stringify(session.sqlMode)}`);
      setup.push(`SET SESSION sql_mode = ${quoteString(session.sqlMode)}`);
    }
    // The file's tables made at once on several connections (each a dozen disk syncs), then the rest in order (see planParallelTables).
    const connections = Math.min(Math.max(1, Math.floor(options.connections ?? 1)), 8);
    const plan = connections > 1 ? planParallelTables(statements) : null;
    if (plan) {
      const groups: SqlStatement[][] = Array.from({ length: Math.min(connections, plan.tables.length) }, () => [...plan.preamble]);
      plan.tables.forEach((pair, i) => groups[i % groups.length]!.push(...pair));
      const results = await Promise.allSettled(groups.map((group) => this.runClient(server, database, login, file, group, setup)));
      const failures = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
      if (failures.length > 0) {
        // The first failing statement in the file's order, as a run in order would have stopped at.
        const first = failures.sort((x, y) => lineOf(x) - lineOf(y))[0];
        throw first;
      }
      statements = plan.rest;
    }
    await this.runClient(server, database, login, file, statements, setup);
  }

  /** One client process feeding `statements` in one session (after `setup`), autocommit off, one COMMIT at the end. */
  private async runClient(server: Server, database: string, login: TenantLogin, file: string, statements: readonly SqlStatement[], session: readonly string[]): Promise<void> {
    const lines: string[] = [];
    // Rows commit together, not one redo-log flush per INSERT: DDL still commits as it goes (MySQL's implicit commit), and
    // what a failing file inserted since its last DDL is rolled back with the client's exit instead of left half-applied.
    const setup = [...session, 'SET SESSION autocommit = 0'];
    for (const s of setup) lines.push(s, DELIMITER);
    const startLine: number[] = [];
    for (const statement of statements) {
      startLine.push(lines.length + 1);
      lines.push(...statement.text.split('\n'), DELIMITER);
    }
    const commitLine = lines.length + 1;
    lines.push('COMMIT', DELIMITER);
    const connection = await this.connection(server);
    const argv = [
      connection.client,
      // No option file at all (not the admin's): the install's account, the server's address, nothing else.
      '--no-defaults',
      // No client commands (`\!` would run a shell on the database server, `\.` read its files): SQL goes to the server as written.
      '--sandbox',
      '--binary-mode',
      '--batch',
      '--skip-column-names',
      `--user=${login.user}`,
      ...connectArgs(connection),
      `--delimiter=${DELIMITER}`,
      // The file goes to stdin as UTF-8 (read as such): said so, whatever the server's locale (\`auto\` under C is latin1, which mangles every non-ASCII byte).
      '--default-character-set=utf8mb4',
      `--database=${database}`,
    ];
    // The password in the environment of the client only (readable by root and that process), never in argv.
    const result = await this.access.executorFor(server).run(server, argv, { input: `${lines.join('\n')}\n`, env: { MYSQL_PWD: login.password }, timeoutMs: 10 * 60_000 });
    if (result.exitCode === 0) return;
    const stderr = redact(result.stderr, [login.password]);
    const match = /ERROR(?: \d+ \([0-9A-Z]+\))? at line (\d+)[^:]*: (.*)/s.exec(stderr);
    if (!match) throw new CommandFailedError(server.hostname, [connection.client, `--user=${login.user}`, database], result.exitCode, stderr);
    const failedLine = Number(match[1]);
    if (failedLine >= commitLine) throw new SqlStatementError(server.hostname, file, 0, 'COMMIT', match[2]!.trim());
    let index = -1;
    for (let i = 0; i < startLine.length; i++) if (startLine[i]! <= failedLine) index = i;
    if (index === -1) throw new SqlStatementError(server.hostname, file, 0, setup.join('; '), match[2]!.trim());
    const statement = statements[index]!;
    throw new SqlStatementError(server.hostname, file, statement.line, statement.text, match[2]!.trim());
  }

  private conflict(server: Server, what: string): NameConflictError {
    return new NameConflictError(`${what} already exists on ${server.hostname} and was not created by this install: it is left as it is (choose another name, or remove it by hand if it is junk)`);
  }

  /** SQL on the admin connection; returns what the client printed (batch mode, no column names). */
  private async admin(server: Server, sql: string, options: { secrets?: readonly string[] } = {}): Promise<string> {
    const { client } = await this.connection(server);
    const argv = [client, ...(server.dbOptionsFile ? [`--defaults-extra-file=${server.dbOptionsFile}`] : []), '--batch', '--skip-column-names', '--sandbox', '--binary-mode'];
    const result = await this.access.executorFor(server).run(server, argv, { input: sql, timeoutMs: 10 * 60_000 });
    if (result.exitCode !== 0) {
      throw new CommandFailedError(server.hostname, [client, 'admin'], result.exitCode, redact(result.stderr, options.secrets ?? []));
    }
    return result.stdout;
  }
}

function connectArgs(connection: DatabaseConnection): string[] {
  if (connection.socket) return [`--socket=${connection.socket}`];
  return [...(connection.host ? [`--host=${connection.host}`] : []), ...(connection.port ? [`--port=${connection.port}`] : [])];
}

/** A client's message may quote the statement: passwords (and their quoted forms) never leave in an error. */
function redact(text: string, secrets: readonly string[]): string {
  let out = text.replace(/IDENTIFIED BY '(?:[^'\\]|\\.)*'/g, "IDENTIFIED BY '***'").replace(/PASSWORD\('(?:[^'\\]|\\.)*'\)/g, "PASSWORD('***')");
  for (const secret of secrets) {
    if (secret === '') continue;
    for (const form of new Set([secret, quoteString(secret).slice(1, -1)])) out = out.split(form).join('***');
  }
  return out;
}

/** Where a failure of a statement run stands in its file (others last). */
function lineOf(error: unknown): number {
  return error instanceof SqlStatementError && error.line > 0 ? error.line : Number.MAX_SAFE_INTEGER;
}
