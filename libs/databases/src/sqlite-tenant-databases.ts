import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
 * Tenant databases of the embedded default, whose one server has no MySQL:
 * each database is an SQLite file under `<var>/tenant-databases`, users are
 * recorded next to them (SQLite has no accounts). The same calls as the
 * MariaDB adapter; SQL updates must then be written in the common subset.
 */
export class SqliteTenantDatabases {
  constructor(private readonly dir: string) {}

  private file(name: string): string {
    return join(this.dir, `${name}.sqlite`);
  }

  private users(): Record<string, string> {
    const path = join(this.dir, 'users.json');
    return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as Record<string, string>) : {};
  }

  private saveUsers(users: Record<string, string>): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    writeFileSync(join(this.dir, 'users.json'), JSON.stringify(users, null, 2), { mode: 0o600 });
  }

  databaseExists(name: string): boolean {
    return existsSync(this.file(name));
  }

  createDatabase(name: string): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    new Database(this.file(name)).close();
  }

  dropDatabase(name: string): void {
    for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(`${this.file(name)}${suffix}`, { force: true });
  }

  userExists(user: string): boolean {
    return user in this.users();
  }

  createUser(user: string, database: string): void {
    this.saveUsers({ ...this.users(), [user]: database });
  }

  dropUser(user: string): void {
    const users = this.users();
    delete users[user];
    this.saveUsers(users);
  }

  /** Runs the statements in order; the first failure is returned with its statement. */
  runStatements(database: string, file: string, statements: readonly SqlStatement[]): StatementFailure | null {
    const db = new Database(this.file(database));
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
