import { chmodSync, closeSync, existsSync, mkdirSync, openSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { createConnection, type RowDataPacket } from 'mysql2/promise';
import { DataSource, type DataSourceOptions } from 'typeorm';
import type { CatalogConfig } from '@app/config';
import { MYSQL_MIGRATIONS } from '../../../migrations/mysql/index.js';
import { SQLITE_MIGRATIONS } from '../../../migrations/sqlite/index.js';
import { CATALOG_ENTITIES } from './entities/index.js';
import { SnakeNamingStrategy } from './naming.strategy.js';

export const MIGRATIONS_TABLE = 'migrations';

/**
 * TypeORM options for the catalog. The schema always comes from the
 * migrations of the driver in use (never `synchronize`), in tests too.
 * A MySQL URL may point at MySQL or MariaDB: the server is asked which, since
 * TypeORM reads MariaDB's catalog (column defaults) differently.
 */
export async function catalogDataSourceOptions(catalog: CatalogConfig): Promise<DataSourceOptions> {
  const common = {
    entities: CATALOG_ENTITIES,
    namingStrategy: new SnakeNamingStrategy(),
    migrationsTableName: MIGRATIONS_TABLE,
    synchronize: false,
    logging: false,
  } as const;
  if (catalog.kind === 'sqlite') {
    if (catalog.path !== ':memory:') ownerOnlyDatabaseFile(catalog.path);
    return {
      ...common,
      type: 'better-sqlite3',
      database: catalog.path,
      migrations: SQLITE_MIGRATIONS,
      // The engine and a CLI snippet may share the file: WAL lets readers
      // proceed during a write, and a busy writer is waited for, not failed.
      prepareDatabase: (db: { pragma(sql: string): unknown }) => {
        db.pragma('journal_mode = WAL');
        db.pragma('busy_timeout = 5000');
        db.pragma('foreign_keys = ON');
      },
    };
  }
  return {
    ...common,
    type: await mysqlFlavor(catalog),
    host: catalog.host,
    port: catalog.port,
    username: catalog.user,
    password: catalog.password,
    database: catalog.database,
    charset: 'utf8mb4_unicode_ci',
    // Store and read every datetime as UTC, whatever the servers' zones are.
    timezone: 'Z',
    migrations: MYSQL_MIGRATIONS,
    connectTimeout: 10_000,
    poolSize: catalog.poolSize ?? 20,
  };
}

/**
 * The embedded catalog holds every install's encrypted secrets and the token
 * hashes: only the engine's user reads it. Created 0600 before SQLite opens
 * it, since SQLite gives its -wal and -shm files the mode of the database
 * file; a catalog (or -wal, -shm) left readable by an earlier version is
 * tightened.
 */
function ownerOnlyDatabaseFile(path: string): void {
  mkdirSync(dirname(path), { recursive: true });
  closeSync(openSync(path, 'a', 0o600));
  for (const file of [path, `${path}-wal`, `${path}-shm`, `${path}-journal`]) {
    if (existsSync(file) && (statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
  }
}

/** A data source for the CLI and tests; the engine gets its own from Nest. */
export async function createCatalogDataSource(catalog: CatalogConfig): Promise<DataSource> {
  return new DataSource(await catalogDataSourceOptions(catalog));
}

async function mysqlFlavor(catalog: Extract<CatalogConfig, { kind: 'mysql' }>): Promise<'mysql' | 'mariadb'> {
  const connection = await createConnection({
    host: catalog.host,
    port: catalog.port,
    user: catalog.user,
    password: catalog.password,
    database: catalog.database,
    connectTimeout: 10_000,
  });
  try {
    const [rows] = await connection.query<RowDataPacket[]>('SELECT VERSION() AS v');
    return String(rows[0]?.v ?? '').includes('MariaDB') ? 'mariadb' : 'mysql';
  } finally {
    await connection.end();
  }
}
