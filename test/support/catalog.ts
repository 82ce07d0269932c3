import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DataSource } from 'typeorm';
import { createCatalogDataSource } from '@app/catalog';
import { loadConfig, type CatalogConfig, type ConfigEnv, type EngineConfig } from '@app/config';
import { createTestDatabase } from './mariadb.js';

export const CATALOG_KINDS = ['mariadb', 'sqlite'] as const;
export type CatalogKind = (typeof CATALOG_KINDS)[number];

/** A catalog database of its own for one test file: MariaDB on the testbed, or a SQLite file. */
export interface TestCatalog {
  kind: CatalogKind;
  url: string;
  catalog: CatalogConfig;
  drop(): Promise<void>;
}

export const TEST_SECRETS_KEY = '0f'.repeat(32);

export async function createTestCatalog(kind: CatalogKind, prefix: string): Promise<TestCatalog> {
  if (kind === 'mariadb') {
    const db = await createTestDatabase(prefix);
    return { kind, url: db.url, catalog: catalogOf(db.url), drop: db.drop };
  }
  const dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  const url = `sqlite:${join(dir, 'catalog.sqlite')}`;
  return { kind, url, catalog: catalogOf(url), drop: async () => rmSync(dir, { recursive: true, force: true }) };
}

function catalogOf(url: string): CatalogConfig {
  return loadConfig({ CATALOG_URL: url, SECRETS_KEY: TEST_SECRETS_KEY }).catalog;
}

/** An initialized data source on the test catalog, migrations applied unless told otherwise. */
export async function openCatalog(test: TestCatalog, options: { migrate?: boolean } = {}): Promise<DataSource> {
  const dataSource = await createCatalogDataSource(test.catalog);
  await dataSource.initialize();
  if (options.migrate !== false) await dataSource.runMigrations({ transaction: 'each' });
  return dataSource;
}

/**
 * Starts a MariaDB catalog's install ids at `first`. Builds on a server whose
 * PHP the engine manages make (and their compensations and the suites' clean-up
 * remove) the system user `shop<id>` on this machine, shared by every suite
 * running at once: each such suite takes its own range so two suites never
 * make or remove one account. Taken: pool-pipeline 105001, php-isolation
 * 107001, cloud-handlers 108001, change-codebase 111001.
 */
export async function ownInstallIds(dataSource: DataSource, first: number): Promise<void> {
  if (!Number.isSafeInteger(first) || first < 1) throw new Error(`ownInstallIds: ${first} is not a positive integer`);
  await dataSource.query(`ALTER TABLE installs AUTO_INCREMENT = ${first}`);
}

/** Engine configuration for a test: quiet logs, a private var dir, any free port. */
export function testEngineConfig(catalogUrl: string, env: ConfigEnv = {}): EngineConfig {
  const varDir = mkdtempSync(join(tmpdir(), 'engine-var-'));
  return loadConfig({
    CATALOG_URL: catalogUrl,
    SECRETS_KEY: TEST_SECRETS_KEY,
    PORT: '0',
    LOG_LEVEL: 'silent',
    VAR_DIR: varDir,
    // The suites run `transport: local` servers on a MariaDB catalog.
    ALLOW_LOCAL_TRANSPORT: 'true',
    // The BindMounts task would mount in this machine's own mount table: only suites that run servers in mount namespaces turn it on.
    FTP_ENABLED: 'false',
    ...env,
  });
}
