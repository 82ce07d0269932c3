import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { SqlStatement } from './sql-split.js';

/** What a failing statement looks like, whichever adapter ran it. */
export interface StatementFailure {
  file: string;
  line: number;
  statement: string;
  message: string;
}

/**
 * Tenant databases of the embedded default's own server, which has no
 * MySQL: each database is an SQLite file under its directory, users are
 * recorded next to them (SQLite has no accounts). The same calls as the
 * MariaDB adapter; SQL updates must then be written in the common subset.
 * A database file carries the id of the install that created it
 * (`PRAGMA application_id`, set as it is created), so a file this install
 * did not create is never adopted or removed.
 */
export class SqliteTenantDatabases {
  constructor(readonly dir: string) {}

  file(name: string): string {
    return join(this.dir, `${name}.sqlite`);
  }

  private users(): Record<string, string> {
    const path = join(this.dir, 'users.json');
    return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as Record<string, string>) : {};
  }

  /** Written to a new file, synced, then renamed over the old one: a kill mid-write leaves the old file whole. */
  private saveUsers(users: Record<string, string>): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const path = join(this.dir, 'users.json');
    const temp = `${path}.tmp-${randomBytes(6).toString('hex')}`;
    const fd = openSync(temp, 'wx', 0o600);
    try {
      writeSync(fd, JSON.stringify(users, null, 2));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
  }

  databaseExists(name: string): boolean {
    return existsSync(this.file(name));
  }

  /** Creates the file owned by the install; one that exists is the install's only if it carries its id. */
  createDatabase(name: string, installId: number): 'created' | 'ours' | 'not-ours' {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    if (this.databaseExists(name)) return this.ownerOf(name) === installId ? 'ours' : 'not-ours';
    const db = new Database(this.file(name));
    try {
      db.pragma(`application_id = ${Number(installId) | 0}`);
    } finally {
      db.close();
    }
    return 'created';
  }

  dropDatabase(name: string, installId: number): 'dropped' | 'absent' | 'not-ours' {
    if (!this.databaseExists(name)) return 'absent';
    if (this.ownerOf(name) !== installId) return 'not-ours';
    for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(`${this.file(name)}${suffix}`, { force: true });
    return 'dropped';
  }

  private ownerOf(name: string): number {
    const db = new Database(this.file(name), { readonly: true, fileMustExist: true });
    try {
      return Number(db.pragma('application_id', { simple: true }));
    } finally {
      db.close();
    }
  }

  userExists(user: string): boolean {
    return user in this.users();
  }

  /** Records the user for its database; a user recorded for another database is not this install's. */
  createUser(user: string, database: string): 'created' | 'ours' | 'not-ours' {
    const users = this.users();
    if (user in users) return users[user] === database ? 'ours' : 'not-ours';
    this.saveUsers({ ...users, [user]: database });
    return 'created';
  }

  dropUser(user: string, database?: string): 'dropped' | 'absent' | 'not-ours' {
    const users = this.users();
    if (!(user in users)) return 'absent';
    if (database !== undefined && users[user] !== database) return 'not-ours';
    delete users[user];
    this.saveUsers(users);
    return 'dropped';
  }

  /** Runs the statements in order; the first failure is returned with its statement. */
  runStatements(database: string, file: string, statements: readonly SqlStatement[]): StatementFailure | null {
    const db = new Database(this.file(database), { fileMustExist: true });
    try {
      for (const statement of statements) {
        try {
          db.exec(statement.text);
        } catch (error) {
          return { file, line: statement.line, statement: statement.text, message: (error as Error).message };
        }
      }
      return null;
    } finally {
      db.close();
    }
  }
}
