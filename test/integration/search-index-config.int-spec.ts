import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { INestApplicationContext, Type } from '@nestjs/common';
import mysql from 'mysql2/promise';
import { DataSource, In } from 'typeorm';
import { Install, Server, SharedCodeGroup } from '@app/catalog';
import { parseManifest } from '@app/codebases';
import { HostsModule } from '@app/hosts';
import { encryptSecret } from '@app/installs';
import { confPath, SearchIndexConfigTask, SearchIndexes, searchReader, SearchModule, type SphinxLayout } from '@app/search';
import { startEngine } from '../../apps/engine/src/start-engine.js';
import { createTestCatalog, ownInstallIds, TEST_SECRETS_KEY, testEngineConfig, type TestCatalog } from '../support/catalog.js';
import { cleanEnv, runCli } from '../support/processes-engine.js';
import { freePort } from '../support/free-port.js';
import { portAnswers, startServerProcess, stopProcessTree, waitUntil, type ServerProcess } from '../support/processes.js';
import { startQueueContext } from '../support/queue-context.js';
import { testServer } from '../support/server-roots.js';
import { writeDbOptionsFile } from '../support/tenant-db-server.js';
import { readTestbed } from '../support/testbed.js';
import { codeGroupFor } from '../support/web-installs.js';

/**
 * The SearchIndexConfig task (the seed's sphinx cron) with the real Debian
 * `indexer` and `searchd` (Sphinx 2.2) on loopback, over the testbed
 * MariaDB, on a database server with the `search` role reached over SSH:
 * each shop's index reads its own database with its own read-only account,
 * a product is found in its shop's index only, a removed install's index
 * goes, and nothing is rewritten when nothing changed.
 */
describe('search index config (Sphinx indexer and searchd over MariaDB, SSH search server)', () => {
  const LISTEN_IP = '127.0.121.1';
  let base: string;
  let catalog: TestCatalog;
  let app: INestApplicationContext;
  let ds: DataSource;
  let server: Server;
  let group: SharedCodeGroup;
  let indexes: SearchIndexes;
  let layout: SphinxLayout;
  let searchd: ServerProcess | null = null;
  let sqlPort: number;
  const shops: Install[] = [];
  let noSearch: Install;
  const suffix = Math.random().toString(36).slice(2, 7);
  const passwords = [`pw-one-${suffix}-0123456789`, `pw-two-${suffix}-0123456789`];
  const key = Buffer.from(TEST_SECRETS_KEY, 'hex');
  const lines: string[] = [];
  const log = (line: string) => lines.push(line);

  const admin = async <T = unknown>(sql: string): Promise<T> => {
    const { mariadb } = readTestbed();
    const connection = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: mariadb.adminUser, password: mariadb.adminPassword, multipleStatements: true });
    try {
      return (await connection.query(sql))[0] as T;
    } finally {
      await connection.end();
    }
  };
  /** SphinxQL through the MariaDB client protocol (no user, as searchd takes it). */
  const sphinxql = async (sql: string): Promise<Record<string, unknown>[]> => {
    const connection = await mysql.createConnection({ host: LISTEN_IP, port: sqlPort });
    try {
      return (await connection.query(sql))[0] as Record<string, unknown>[];
    } finally {
      await connection.end();
    }
  };
  const ids = async (install: Install, words: string) => (await sphinxql(`SELECT id FROM idx_${install.fsName} WHERE MATCH('${words}')`)).map((r) => Number(r.id));
  const dataFiles = (install: Install) => readdirSync(join(layout.dir, 'data')).filter((f) => f.startsWith(`idx_${install.fsName}.`));

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'search-index-'));
    chmodSync(base, 0o755);
    sqlPort = await freePort();
    catalog = await createTestCatalog('mariadb', 'search_index');
    app = await startQueueContext(catalog.url, [], null, [HostsModule.forRoot({ http: false }), SearchModule] as unknown as Type[], { SEARCH_PORT: String(sqlPort) });
    ds = app.get(DataSource);
    await ownInstallIds(ds, 123001);
    server = await ds.getRepository(Server).save(testServer(join(base, 'db1'), 'search-db1.example.net', ['database', 'search'], readTestbed().sshd, { privateIp: LISTEN_IP, dbOptionsFile: writeDbOptionsFile(base) }));
    group = await codeGroupFor(ds, server, 'searchable');
    const manifest = group.manifest as Record<string, any>;
    manifest.sql = { ...manifest.sql, tablePrefix: { placeholder: 'oc_', value: 'shop_' } };
    manifest.search = {
      query: 'SELECT id, title, body, price FROM oc_products WHERE status = 1',
      attributes: [{ name: 'price', type: 'uint' }],
      stringFields: ['title'],
    };
    await ds.getRepository(SharedCodeGroup).update({ id: group.id }, { manifest });
    for (const [i, name] of ['one', 'two'].entries()) {
      const dbName = `srch_${name}_${suffix}`;
      await admin(
        `CREATE DATABASE ${dbName}; CREATE TABLE ${dbName}.shop_products (id INT UNSIGNED PRIMARY KEY, title VARCHAR(200), body TEXT, price INT UNSIGNED, status TINYINT NOT NULL DEFAULT 1);`,
      );
      shops.push(await ds.getRepository(Install).save({
        orderRef: `SEARCH-${name}-${suffix}`, customerEmail: `${name}@example.com`, license: 'paid', fsName: `srch${name}${suffix}`, dbName, dbUser: `s${name}${suffix}`,
        dbPasswordEnc: encryptSecret(key, passwords[i]!), dbServerId: server.id, sharedCodeGroupId: group.id, masterServerId: server.id, status: 'live',
      } as unknown as Install));
    }
    // A live install of a group whose manifest has no search section: no index.
    const plain = await codeGroupFor(ds, server, 'plain');
    noSearch = await ds.getRepository(Install).save({
      orderRef: `SEARCH-plain-${suffix}`, customerEmail: 'plain@example.com', license: 'paid', fsName: `srchplain${suffix}`, dbName: `srch_plain_${suffix}`, dbUser: `splain${suffix}`,
      dbPasswordEnc: encryptSecret(key, 'unused-password'), dbServerId: server.id, sharedCodeGroupId: plain.id, masterServerId: server.id, status: 'live',
    } as unknown as Install);
    await admin(
      `INSERT INTO ${shops[0]!.dbName}.shop_products VALUES (1, 'Red wool scarf', 'Warm merino wool', 2500, 1), (2, 'Hidden wool hat', 'not for sale', 900, 0);` +
        `INSERT INTO ${shops[1]!.dbName}.shop_products VALUES (7, 'Linen shirt', 'Light summer linen', 4000, 1);`,
    );
    indexes = app.get(SearchIndexes);
    layout = indexes.layoutOf(server);
  });

  afterAll(async () => {
    if (searchd) await stopProcessTree(searchd.pid, base);
    for (const install of shops) {
      const reader = searchReader(install, passwords[shops.indexOf(install)]!);
      await admin(`DROP USER IF EXISTS '${reader.user}'@'127.0.0.1'; DROP DATABASE IF EXISTS ${install.dbName};`).catch(() => undefined);
    }
    await app?.close();
    await catalog?.drop();
    rmSync(base, { recursive: true, force: true });
  });

  it('gives a search server with no shop index yet a config searchd starts on', async () => {
    await ds.getRepository(Install).update({ id: In(shops.map((s) => s.id)) }, { status: 'building' });
    const [run] = await indexes.apply({ log });
    expect(run).toMatchObject({ indexes: 0, confWritten: true, built: [], removed: [] });
    searchd = await startServerProcess('searchd', ['--config', confPath(layout), '--nodetach'], join(base, 'searchd.log'));
    await waitUntil('searchd on SphinxQL', () => portAnswers(sqlPort, LISTEN_IP), { timeoutMs: 10_000, server: searchd });
    expect((await sphinxql('SHOW TABLES')).map((t) => t.Index)).toEqual(['engine_placeholder']);
    await ds.getRepository(Install).update({ id: In(shops.map((s) => s.id)) }, { status: 'live' });
  });

  it('renders one index per live install of a group with search, builds them with the real indexer, and the running searchd serves each shop its own products', async () => {
    // Through the task, as a worker runs it: its lines are the job's output.
    await app.get(SearchIndexConfigTask).run({ jobId: 1, tick: new Date(), signal: new AbortController().signal, log });
    expect(lines.at(-1)).toBe(`search-db1.example.net: 2 index(es); config written; built ${shops.map((s) => `idx_${s.fsName}`).join(', ')}; removed none`);

    const conf = readFileSync(confPath(layout), 'utf8');
    expect(conf).not.toContain(`idx_${noSearch.fsName}`);
    // The table prefix applied as for the shop's SQL files; each source its own database and reader.
    expect(conf).toContain('sql_query = SELECT id, title, body, price FROM shop_products WHERE status = 1');
    expect(conf).toContain(`sql_db = ${shops[0]!.dbName}`);
    expect(conf).toContain(`sql_user = ${shops[0]!.dbUser}_ro`);
    // On the loopback and on the private IP, where the shops on other servers reach it.
    expect(conf).toContain(`listen = 127.0.0.1:${sqlPort}:mysql41\n  listen = ${LISTEN_IP}:${sqlPort}:mysql41\n`);
    expect(statSync(confPath(layout)).mode & 0o777).toBe(0o600);
    // Passwords never in the run's output.
    const readers = shops.map((s, i) => searchReader(s, passwords[i]!));
    for (const secret of [...passwords, ...readers.map((r) => r.password)]) expect(lines.join('\n')).not.toContain(secret);

    // New indexes join the running searchd (indexer --rotate: SIGHUP, the config read again).
    await waitUntil('the new indexes served', async () => (await sphinxql('SHOW TABLES')).length === 3, { timeoutMs: 5_000 });
    expect(await ids(shops[0]!, 'wool')).toEqual([1]);
    expect(await ids(shops[1]!, 'wool')).toEqual([]);
    expect(await ids(shops[1]!, 'linen')).toEqual([7]);
    const [row] = await sphinxql(`SELECT id, title, price FROM idx_${shops[0]!.fsName} WHERE MATCH('scarf')`);
    expect(row).toEqual({ id: 1, title: 'Red wool scarf', price: 2500 });
  });

  it("makes each reader read-only on its own database: it selects, it cannot write, and it cannot see the other shop", async () => {
    const { mariadb } = readTestbed();
    const reader = searchReader(shops[0]!, passwords[0]!);
    const connection = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: reader.user, password: reader.password, database: shops[0]!.dbName });
    try {
      expect(((await connection.query('SELECT COUNT(*) AS n FROM shop_products'))[0] as { n: number }[])[0]!.n).toBe(2);
      await expect(connection.query(`INSERT INTO shop_products VALUES (3, 'x', 'y', 1, 1)`)).rejects.toThrow(/INSERT command denied/);
      await expect(connection.query(`SELECT * FROM ${shops[1]!.dbName}.shop_products`)).rejects.toThrow(/denied/);
    } finally {
      await connection.end();
    }
  });

  it('leaves the config and the indexes alone when nothing changed', async () => {
    const before = statSync(confPath(layout));
    const [run] = await indexes.apply({ log });
    expect(run).toMatchObject({ confWritten: false, built: [], removed: [], failed: [] });
    const after = statSync(confPath(layout));
    expect([after.ino, after.mtimeMs]).toEqual([before.ino, before.mtimeMs]);
  });

  it("finds a product inserted in one shop's database once its index is refreshed, in that shop's index only", async () => {
    await admin(`INSERT INTO ${shops[1]!.dbName}.shop_products VALUES (8, 'Alpaca wool blanket', 'Soft', 12000, 1);`);
    // Within the refresh interval: not rebuilt.
    expect((await indexes.apply({ log }))[0]!.built).toEqual([]);
    expect(await ids(shops[1]!, 'alpaca')).toEqual([]);
    // The manifest's refreshMinutes (default a day) later: rebuilt and rotated into the running searchd, the config untouched.
    const later = new Date(Date.now() + 24 * 60 * 60_000 + 1000);
    const [run] = await indexes.apply({ log, now: later });
    expect(run).toMatchObject({ confWritten: false, built: shops.map((s) => `idx_${s.fsName}`) });
    await waitUntil('the rotated index', async () => (await ids(shops[1]!, 'alpaca')).length === 1, { timeoutMs: 5_000 });
    expect(await ids(shops[1]!, 'wool')).toEqual([8]);
    expect(await ids(shops[0]!, 'alpaca')).toEqual([]);
  });

  it('rebuilds the indexes whose query changed with their group\'s manifest', async () => {
    const manifest = (await ds.getRepository(SharedCodeGroup).findOneByOrFail({ id: group.id })).manifest as Record<string, any>;
    manifest.search.query = 'SELECT id, title, body, price FROM oc_products';
    await ds.getRepository(SharedCodeGroup).update({ id: group.id }, { manifest });
    const [run] = await indexes.apply({ log });
    expect(run).toMatchObject({ confWritten: true, built: shops.map((s) => `idx_${s.fsName}`) });
    await waitUntil('the hidden product indexed', async () => (await ids(shops[0]!, 'hat')).length === 1, { timeoutMs: 5_000 });
  });

  it("takes a removed install's index away: its config entry, its files, its read-only account; the other shop is still served", async () => {
    const gone = shops[1]!;
    const reader = searchReader(gone, passwords[1]!);
    expect(dataFiles(gone).length).toBeGreaterThan(0);
    await ds.getRepository(Install).update({ id: gone.id }, { status: 'removed', removedAt: new Date() });

    const [run] = await indexes.apply({ log });
    expect(run).toMatchObject({ indexes: 1, confWritten: true, built: [], removed: [`idx_${gone.fsName}`], failed: [] });
    expect(readFileSync(confPath(layout), 'utf8')).not.toContain(`idx_${gone.fsName}`);
    expect(dataFiles(gone)).toEqual([]);
    expect(await admin<{ n: number }[]>(`SELECT COUNT(*) AS n FROM mysql.user WHERE User = '${reader.user}'`)).toEqual([{ n: 0 }]);
    await waitUntil('searchd dropping the index', async () => !(await sphinxql('SHOW TABLES')).some((t) => t.Index === `idx_${gone.fsName}`), { timeoutMs: 5_000 });
    expect(await ids(shops[0]!, 'wool')).toEqual([1, 2]);
    // The other shop's reader is still there.
    expect(await admin<{ n: number }[]>(`SELECT COUNT(*) AS n FROM mysql.user WHERE User = '${searchReader(shops[0]!, passwords[0]!).user}'`)).toEqual([{ n: 1 }]);
  });

  it('never takes over an account of the reader\'s name that it did not make, and tries the index again next run', async () => {
    const other = shops[1]!;
    await ds.getRepository(Install).update({ id: other.id }, { status: 'live', removedAt: null });
    const reader = searchReader(other, passwords[1]!);
    await admin(`CREATE USER '${reader.user}'@'127.0.0.1' IDENTIFIED BY 'someone-elses-password'`);
    await expect(indexes.apply({ log })).rejects.toThrow(new RegExp(`search indexes failed on search-db1.example.net: idx_${other.fsName}`));
    expect(lines.at(-1)).toMatch(/its read-only account: database user .* already exists .* not created by this install/);
    await admin(`DROP USER '${reader.user}'@'127.0.0.1'`);
    const [run] = await indexes.apply({ log });
    expect(run).toMatchObject({ confWritten: false, built: [`idx_${other.fsName}`], failed: [] });
    await waitUntil('the index back', async () => (await ids(other, 'linen')).length === 1, { timeoutMs: 5_000 });
  });

  it('refuses a bad search section with a clear error, and keeps the indexes it had meanwhile', async () => {
    const good = (await ds.getRepository(SharedCodeGroup).findOneByOrFail({ id: group.id })).manifest as Record<string, any>;
    const bad = JSON.parse(JSON.stringify(good));
    bad.search = { query: 'SELECT id, title FROM oc_products; DROP TABLE oc_products', attributes: [{ name: 'price', type: 'money' }] };
    await expect(parseManifest(bad)).rejects.toThrow(/search.query must be one line starting with SELECT, printable ASCII without # ; or backslash/);
    await expect(parseManifest(bad)).rejects.toThrow(/type must be one of the following values: uint, bigint, float, bool, timestamp, string/);
    await ds.getRepository(SharedCodeGroup).update({ id: group.id }, { manifest: bad });
    try {
      const before = readFileSync(confPath(layout), 'utf8');
      const [run] = await indexes.apply({ log });
      expect(run).toMatchObject({ indexes: 2, confWritten: false, built: [], removed: [] });
      expect(readFileSync(confPath(layout), 'utf8')).toBe(before);
      expect(lines).toContainEqual(expect.stringMatching(new RegExp(`idx_${shops[0]!.fsName}: kept as it was: the manifest of code group searchable does not parse: .*search.query must be one line`)));
    } finally {
      await ds.getRepository(SharedCodeGroup).update({ id: group.id }, { manifest: good });
    }
  });

  it('runs as the SearchIndexConfig task of an engine (cron and worker): tasks:run streams its output, without a password', async () => {
    const engine = await startEngine(testEngineConfig(catalog.url, { ENGINE_ROLES: 'worker,cron', SEARCH_PORT: String(sqlPort), WORKER_POLL_MS: '50' }));
    try {
      const env = cleanEnv({ CATALOG_URL: catalog.url, SECRETS_KEY: TEST_SECRETS_KEY, VAR_DIR: join(base, 'cli-var'), LOG_LEVEL: 'silent' });
      const run = await runCli(['tasks:run', 'SearchIndexConfig'], process.cwd(), env);
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(run.stdout).toContain('search-db1.example.net: 2 index(es); config unchanged; built none; removed none');
      expect(run.stdout).toMatch(/job \d+ done after 1 attempt/);
      for (const [i, install] of shops.entries()) expect(run.stdout).not.toContain(searchReader(install, passwords[i]!).password);
    } finally {
      await engine.close();
    }
  }, 120_000);
});

