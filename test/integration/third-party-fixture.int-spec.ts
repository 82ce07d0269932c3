import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomInt } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { prepareSql, splitSql } from '@app/databases';
import { largeShopDump } from '../../bench/large-shop-dump.js';
import { manifestSourcePaths, parseManifest, renderTemplate } from '@app/codebases';
import { writeDbOptionsFile } from '../support/tenant-db-server.js';
import {
  buildThirdPartyShopRepository,
  THIRD_PARTY_SHOP_EXPECTED as EXPECTED,
  THIRD_PARTY_SHOP_MANIFEST as MANIFEST,
  type ThirdPartyShopRepository,
} from '../support/third-party-shop.js';

/**
 * The third-party shop fixture (issue 14) itself: its repository and
 * manifest, its PHP, its dump loaded into the testbed's MariaDB once prepared
 * as the shop's installer does (the engine's prepareSql), its install SQL
 * template rendered by the engine's renderer. Two installs of it through the
 * engine, nginx and php-fpm: test/e2e/third-party-shop.e2e-spec.ts.
 */
describe('third-party shop fixture (MariaDB, nginx, php-fpm)', () => {
  let base: string;
  let repo: ThirdPartyShopRepository;
  let checkout: string;
  let options: string;
  const suffix = Math.random().toString(36).slice(2, 7);
  const databases: string[] = [];
  const users: string[] = [];
  const prefix = MANIFEST.sql!.tablePrefix!;
  const sessionMode = MANIFEST.sql!.session!.sqlMode!;

  /** The mysql client as the admin, reading `sql` from stdin: its exit status and stderr. */
  const client = (sql: string, database?: string) => {
    const result = spawnSync('mariadb', [`--defaults-extra-file=${options}`, '--default-character-set=utf8mb4', '--batch', '--raw', '--skip-column-names', ...(database ? [database] : [])], { input: sql, encoding: 'utf8' });
    return { status: result.status, stdout: result.stdout, stderr: result.stderr };
  };
  const mustRun = (sql: string, database?: string) => {
    const r = client(sql, database);
    if (r.status !== 0) throw new Error(`mariadb: ${r.stderr}`);
    return r.stdout;
  };
  const newDatabase = (name: string) => {
    const db = `tpf_${name}_${suffix}`;
    databases.push(db);
    mustRun(`CREATE DATABASE \`${db}\` CHARACTER SET utf8mb4`);
    return db;
  };
  const dump = () => readFileSync(join(checkout, 'install/opencart.sql'), 'utf8');
  const prepared = () => prepareSql(dump(), MANIFEST.sql);
  const session = `SET SESSION sql_mode = '${sessionMode}';\nSET NAMES utf8mb4;\n`;

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'third-party-fixture-'));
    chmodSync(base, 0o755);
    repo = await buildThirdPartyShopRepository(join(base, 'repo'));
    checkout = join(base, 'shared_codes', 'shop');
    mkdirSync(dirname(checkout), { recursive: true });
    execFileSync('git', ['clone', '--quiet', repo.path, checkout]);
    options = writeDbOptionsFile(base);
  });
  afterAll(() => {
    for (const db of databases) client(`DROP DATABASE IF EXISTS \`${db}\``);
    for (const user of users) client(`DROP USER IF EXISTS '${user}'@'127.0.0.1'`);
    if (base) rmSync(base, { recursive: true, force: true });
  });

  it('is a git repository whose manifest parses, names paths that exist, and equals the exported one', async () => {
    expect(execFileSync('git', ['-C', repo.path, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).trim()).toBe(repo.revision);
    const manifest = await parseManifest(JSON.parse(readFileSync(join(checkout, 'hosting.manifest.json'), 'utf8')));
    expect(JSON.parse(JSON.stringify(manifest))).toEqual(JSON.parse(JSON.stringify(MANIFEST)));
    for (const path of manifestSourcePaths(manifest)) expect({ path, exists: existsSync(join(checkout, path)) }).toEqual({ path, exists: true });
    for (const entry of manifest.web.phpEntryPoints) expect(existsSync(join(checkout, manifest.web.documentRoot, entry))).toBe(true);
    expect(manifest.secrets!.map((s) => s.length)).toEqual(expect.arrayContaining([1024, 256]));
    // Every extension it asks for is one this machine's php-fpm has.
    const modules = execFileSync('php-fpm8.2', ['-m'], { encoding: 'utf8' }).toLowerCase().split('\n');
    for (const ext of manifest.php!.extensions!) expect({ ext, present: modules.includes(ext.toLowerCase()) }).toEqual({ ext, present: true });
  });

  it('has PHP that php -l accepts, rendered config templates included', async () => {
    const php = listFiles(checkout).filter((f) => f.endsWith('.php'));
    expect(php.length).toBeGreaterThanOrEqual(7);
    for (const file of php) expect(lint(readFileSync(join(checkout, file), 'utf8'))).toEqual({ file: 'ok' });
    for (const template of MANIFEST.templates!) {
      const rendered = await renderTemplate(readFileSync(join(checkout, template.source), 'utf8'), 'php', templateValues('/srv/home/x', 'x', 'db_x', 'secret', "O'Brien \\ Co"), template.source);
      expect(lint(rendered)).toEqual({ file: 'ok' });
    }
  });

  it("loads its dump into MariaDB once prepared as the shop's installer does, and only then", () => {
    const raw = newDatabase('raw');
    // As shipped: its tables carry the installer's placeholder prefix, not the one the shop's code is configured with.
    mustRun(session + dump(), raw);
    expect(mustRun(`SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '${raw}' AND TABLE_NAME LIKE 'oc\\_%'`).trim()).toBe('10');
    expect(client('SELECT COUNT(*) FROM shop_setting', raw).stderr).toMatch(/doesn't exist/);
    // Prepared, but in the server's strict default mode: the dump's lax inserts fail.
    const strict = newDatabase('strict');
    const inStrictMode = client(prepared(), strict);
    expect(inStrictMode.status).not.toBe(0);
    expect(inStrictMode.stderr).toMatch(/doesn't have a default value/);

    const db = newDatabase('dump');
    mustRun(session + prepared(), db);
    const tables = mustRun(`SELECT TABLE_NAME, TABLE_COLLATION FROM information_schema.TABLES WHERE TABLE_SCHEMA = '${db}' ORDER BY 1`, db).trim().split('\n');
    expect(tables.length).toBeGreaterThanOrEqual(10);
    for (const line of tables) expect(line).toMatch(/^shop_[a-z_]+\tutf8mb4_general_ci$/);
    expect(mustRun("SELECT `value` FROM shop_setting WHERE `key` = 'config_meta_description'", db).trim()).toBe(EXPECTED.metaDescription);
    expect(mustRun('SELECT name FROM shop_product_description WHERE product_id = 42', db).trim()).toBe(EXPECTED.productName);
    expect(mustRun('SELECT shop_format_price(MIN(price)) FROM shop_product', db).trim()).toBe(EXPECTED.cheapest);
    expect(mustRun("SELECT `value` FROM shop_setting WHERE `key` = 'config_file_ext_allowed'", db)).toBe('zip\ntxt\npng\njpg\n');
  });

  it("creates its admin users from the install SQL template, with the engine's hashes (bcrypt, the salted sha1 chain)", async () => {
    const db = newDatabase('users');
    mustRun(session + prepared(), db);
    const secrets = { admin_password: randomSecret(16), admin_salt: randomSecret(9) };
    mustRun(session + (await installSql(secrets, "Tom's \\ \"Bikes\"", 'owner@example.com')), db);
    const rows = mustRun('SELECT username, LEFT(password, 4), LENGTH(password), salt, email FROM shop_user ORDER BY user_id', db).trim().split('\n');
    expect(rows).toEqual([`admin\t$2y$\t60\t\towner@example.com`, `legacy\t${sha1(secrets.admin_salt + sha1(secrets.admin_salt + sha1(secrets.admin_password))).slice(0, 4)}\t40\t${secrets.admin_salt}\towner@example.com`]);
    expect(mustRun("SELECT `value` FROM shop_setting WHERE `key` = 'config_name'", db).trim()).toBe("Tom's \\ \"Bikes\"");
  });

  it("loads the install benchmark's large dump: about 400 statements, 130 tables of demo data", () => {
    const { sql, statements } = largeShopDump();
    expect(splitSql(sql)).toHaveLength(statements);
    expect(statements).toBeGreaterThanOrEqual(390);
    const db = newDatabase('large');
    mustRun(sql, db);
    expect(mustRun(`SELECT COUNT(*), SUM(TABLE_ROWS > 0) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '${db}'`).trim()).toBe('130\t130');
    expect(mustRun('SELECT name, LEFT(description, 20) FROM demo_130 WHERE id = 20', db).trim()).toBe("Demo demo_130 20\tDemo entry 20 of dem");
  });

  /** The install SQL template as the engine renders and prepares it (its hashes computed by the engine's template functions). */
  async function installSql(secrets: Record<string, string>, store: string, email: string): Promise<string> {
    const source = readFileSync(join(checkout, MANIFEST.sql!.templates![0]!.file), 'utf8');
    const values = { store_name: store, admin_email: email, 'secret.admin_salt': secrets.admin_salt!, 'secret.admin_password': secrets.admin_password! };
    return prepareSql(await renderTemplate(source, 'sql', values, 'install.sql'), MANIFEST.sql);
  }
});

const SYMBOLS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#%+-.:=?@^_~';
const ALNUM = SYMBOLS.slice(0, 62);
const randomSecret = (length: number, alphabet = ALNUM) => Array.from({ length }, () => alphabet[randomInt(alphabet.length)]).join('');
const sha1 = (s: string) => createHash('sha1').update(s).digest('hex');

function templateValues(home: string, user: string, db: string, password: string, store: string, url = 'http://shop.example.com/'): Record<string, string> {
  return {
    url, secure_url: url, home, db_host: '127.0.0.1', db_port: '3306', db_user: user, db_name: db, db_password: password, table_prefix: 'shop_',
    store_name: store, admin_email: 'owner@example.com', 'secret.encryption_key': randomSecret(1024, SYMBOLS), 'secret.api_key': randomSecret(256),
  };
}

/** `php -l` on a file's text. */
function lint(text: string): { file: string } {
  const result = spawnSync('php', ['-l'], { input: text, encoding: 'utf8' });
  return { file: result.status === 0 ? 'ok' : `${result.stdout}${result.stderr}` };
}

function listFiles(root: string, dir = ''): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) => {
    const path = dir ? `${dir}/${e.name}` : e.name;
    if (path === '.git') return [];
    return e.isDirectory() ? listFiles(root, path) : [path];
  });
}
