import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomInt } from 'node:crypto';
import { chmodSync, cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { splitSql } from '@app/databases';
import { largeShopDump } from '../../bench/large-shop-dump.js';
import { escapeFor, manifestSourcePaths, parseManifest, planTree, renderTemplate, type CheckoutEntry } from '@app/codebases';
import { startNginx, stopNginx } from '../support/nginx.js';
import { startPhpFpm, stopPhpFpm, type PhpFpm } from '../support/php-fpm.js';
import { freePort } from '../support/free-port.js';
import { readTestbed, type NginxServer } from '../support/testbed.js';
import { writeDbOptionsFile } from '../support/tenant-db-server.js';
import {
  buildThirdPartyShopRepository,
  postForm,
  prepareDumpByHand,
  THIRD_PARTY_SHOP_EXPECTED as EXPECTED,
  THIRD_PARTY_SHOP_MANIFEST as MANIFEST,
  type ThirdPartyShopRepository,
} from '../support/third-party-shop.js';
import { fetchSite } from '../support/web-installs.js';

/**
 * The third-party shop fixture (issue 14) checked without the engine's new
 * features: its repository and manifest, its PHP, its dump loaded into the
 * testbed's MariaDB after the shop installer's preparation done by hand, and
 * two tenants built by hand (the engine's tree plan, templates rendered with
 * today's renderer, the install SQL's hashes computed by hand) on one
 * checkout, served by a real nginx (rules written by hand as the design's
 * routing and deny patterns would render them) and php-fpm.
 */
describe('third-party shop fixture (MariaDB, nginx, php-fpm)', () => {
  let base: string;
  let repo: ThirdPartyShopRepository;
  let checkout: string;
  let options: string;
  const suffix = Math.random().toString(36).slice(2, 7);
  const databases: string[] = [];
  const users: string[] = [];
  const strip = MANIFEST.sql!.stripLinePrefixes!;
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
  const prepared = () => prepareDumpByHand(dump(), strip, prefix.placeholder, prefix.value);
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

  it('has PHP that php -l accepts, rendered config templates included', () => {
    const php = listFiles(checkout).filter((f) => f.endsWith('.php'));
    expect(php.length).toBeGreaterThanOrEqual(7);
    for (const file of php) expect(lint(readFileSync(join(checkout, file), 'utf8'))).toEqual({ file: 'ok' });
    for (const template of MANIFEST.templates!) {
      const rendered = renderTemplate(readFileSync(join(checkout, template.source), 'utf8'), 'php', templateValues('/srv/home/x', 'x', 'db_x', 'secret', "O'Brien \\ Co"), template.source);
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

  it('creates its admin users from the install SQL template (hashes computed by hand here)', () => {
    const db = newDatabase('users');
    mustRun(session + prepared(), db);
    const secrets = { admin_password: randomSecret(16), admin_salt: randomSecret(9) };
    mustRun(session + installSqlByHand(secrets, "Tom's \\ \"Bikes\"", 'owner@example.com'), db);
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

  describe('two tenants on one checkout through nginx and php-fpm (rules by hand)', () => {
    let nginx: NginxServer;
    let fpm: PhpFpm;
    let port: number;
    // Not the e2e's addresses (127.0.103.1-2, php-fpm on 127.0.103.200): both may run at once.
    const ip = '127.0.103.150';
    const tenants = [
      { fs: 'alpha', host: 'alpha-shop.example.com', store: "Alpha's \"Best\" Bikes \\ Parts", email: 'alpha@example.com', secrets: {} as Record<string, string>, db: '' },
      { fs: 'beta', host: 'beta-shop.example.com', store: 'Beta Garden & Home', email: 'beta@example.com', secrets: {} as Record<string, string>, db: '' },
    ];
    let snapshotBefore: string;
    const get = (tenant: (typeof tenants)[number], path: string) => fetchSite(ip, tenant.host, path, { port });

    beforeAll(async () => {
      snapshotBefore = snapshot(checkout);
      port = await freePort();
      const webUid = Number(execFileSync('id', ['-u', 'www-data'], { encoding: 'utf8' }).trim());
      const webGid = Number(execFileSync('id', ['-g', 'www-data'], { encoding: 'utf8' }).trim());
      const { mariadb } = readTestbed();
      const vhosts: string[] = [];
      for (const t of tenants) {
        t.db = newDatabase(t.fs);
        const user = `tpf${t.fs}${suffix}`.slice(0, 32);
        users.push(user);
        const password = randomSecret(24);
        mustRun(`CREATE USER '${user}'@'127.0.0.1' IDENTIFIED BY '${password}'; GRANT ALL PRIVILEGES ON \`${t.db}\`.* TO '${user}'@'127.0.0.1';`);
        t.secrets = { encryption_key: randomSecret(1024, SYMBOLS), api_key: randomSecret(256), admin_password: randomSecret(16), admin_salt: randomSecret(9) };
        mustRun(session + prepared(), t.db);
        mustRun(session + installSqlByHand(t.secrets, t.store, t.email), t.db);
        const home = join(base, 'home', t.fs);
        buildHome(home, {
          ...templateValues(home, user, t.db, password, t.store, `http://${t.host}/`),
          db_host: mariadb.host,
          db_port: String(mariadb.port),
          admin_email: t.email,
          'secret.encryption_key': t.secrets.encryption_key!,
          'secret.api_key': t.secrets.api_key!,
        }, webUid, webGid);
        vhosts.push(vhost(t.host, join(home, 'upload')));
      }
      mkdirSync(join(base, 'nginx', 'conf.d'), { recursive: true });
      writeFileSync(join(base, 'nginx', 'conf.d', 'shops.conf'), vhosts.join('\n'));
      fpm = await startPhpFpm(join(base, 'fpm'), '127.0.103.151', 9000);
      nginx = await startNginx(join(base, 'nginx'));

      function vhost(host: string, root: string) {
        const php = 'fastcgi_pass 127.0.103.151:9000; include /etc/nginx/fastcgi_params; fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;';
        return [
          'server {',
          `  listen ${ip}:${port};`,
          `  server_name ${host};`,
          `  root ${root};`,
          '  index index.php;',
          '  location ~ /\\. { deny all; }',
          '  location ~ \\.(tpl|twig|ini|log|sql)$ { deny all; }',
          '  location = /config.php { deny all; }',
          '  location = /admin/config.php { deny all; }',
          `  location = /index.php { ${php} }`,
          `  location = /admin/index.php { ${php} }`,
          '  location ~ \\.php$ { return 403; }',
          '  location ~ \\.(png|jpg|gif|css|js|ico)$ { try_files $uri =404; }',
          '  location / { try_files $uri $uri/ @route; }',
          '  location @route { rewrite ^/(.*)$ /index.php?_route_=$1 last; }',
          '}',
          '',
        ].join('\n');
      }
    });
    afterAll(async () => {
      if (nginx) await stopNginx(nginx);
      if (fpm) await stopPhpFpm(fpm);
    });

    it("answers each storefront with its own store name, its own database and keys, and PHP's REMOTE_ADDR", async () => {
      for (const t of tenants) {
        const page = await get(t, '/');
        expect(page.status).toBe(200);
        expect(page.body).toContain(`store: ${t.store}\ndb-store: ${t.store}\nroute: \nquery: \nremote: 127.0.0.1\n`);
        expect(page.body).toContain(`url: http://${t.host}/\n`);
        expect(page.body).toContain(`email: ${t.email}\n`);
        expect(page.body).toContain(`meta: ${EXPECTED.metaDescription}\n`);
        expect(page.body).toContain(`products: ${EXPECTED.productCount}\ncheapest: ${EXPECTED.cheapest}\nproduct: ${EXPECTED.productName}\n`);
        expect(page.body).toContain(`encryption-key: 1024 ${sha1(t.secrets.encryption_key!)}\napi-key: 256 ${sha1(t.secrets.api_key!)}\n`);
      }
    });

    it('serves the administration from its own directory and config, and logs both admin users in', async () => {
      for (const t of tenants) {
        const page = await get(t, '/admin/');
        expect({ status: page.status, first: page.body.split('\n')[0] }).toEqual({ status: 200, first: `${t.store} administration` });
        expect(page.body).toContain(`action="http://${t.host}/admin/"`);
        for (const username of [EXPECTED.adminUser, EXPECTED.legacyUser]) {
          const login = await postForm(ip, t.host, '/admin/', { username, password: t.secrets.admin_password! }, port);
          expect(login).toEqual({ status: 200, body: `logged in as ${username} at ${t.store}\n` });
        }
        const other = tenants.find((o) => o !== t)!;
        expect((await postForm(ip, t.host, '/admin/', { username: 'admin', password: other.secrets.admin_password! }, port)).status).toBe(403);
      }
    });

    it('routes a path to the front controller with its query, answers the shop\'s 404 for an unknown route (logged), and nginx\'s for a missing image', async () => {
      const [t] = tenants;
      const routed = await get(t!, `/${EXPECTED.categoryRoute}?x=1&y=two`);
      expect(routed.status).toBe(200);
      expect(routed.body).toContain(`route: ${EXPECTED.categoryRoute}\nquery: x=1&y=two\n`);
      expect(routed.body).toContain(`category: ${EXPECTED.categoryName}\n`);
      const unknown = await get(t!, '/no/such-page?z=3');
      expect({ status: unknown.status, route: /route: (.*)\n/.exec(unknown.body)?.[1] }).toEqual({ status: 404, route: 'no/such-page' });
      expect(readFileSync(join(base, 'home', t!.fs, 'upload', EXPECTED.errorLog), 'utf8')).toMatch(/404 no\/such-page\n$/);
      const missing = await get(t!, EXPECTED.missingImage);
      expect(missing.status).toBe(404);
      expect(missing.body).toContain('nginx');
      expect((await get(t!, EXPECTED.stylesheet)).body).toBe(EXPECTED.stylesheetBody);
    });

    it('denies templates, the rendered configs, dot-files, ini files and the log; runs no other PHP file', async () => {
      const [t] = tenants;
      for (const path of [...EXPECTED.denied, EXPECTED.errorLog, '/catalog/controller/startup/startup.php', '/system/library/db.php']) {
        expect({ path, status: (await get(t!, path)).status }).toEqual({ path, status: 403 });
      }
    });

    it('checks images by realpath prefix: a copied catalog image passes (and is cached in the home), a path out of the image directory is refused', async () => {
      const [t] = tenants;
      const ok = await get(t!, `/tool/image?f=${EXPECTED.image}`);
      expect(ok.status).toBe(200);
      expect(ok.body).toContain(`image: ${EXPECTED.image} ${readFileSync(join(checkout, 'upload/image', EXPECTED.image)).length} bytes\ncached: ${EXPECTED.cachedImage}\n`);
      expect((await get(t!, `/image/${EXPECTED.cachedImage}`)).status).toBe(200);
      for (const f of ['../config.php', '../../../../etc/passwd', '../index.php']) {
        const refused = await get(t!, `/tool/image?f=${encodeURIComponent(f)}`);
        expect({ f, status: refused.status }).toEqual({ f, status: 403 });
      }
    });

    it('never answers with the other tenant\'s data over 40 interleaved requests, and writes nothing in the checkout', async () => {
      const paths = ['/', '/admin/', `/${EXPECTED.categoryRoute}`, '/no-such-route'];
      const answers = await Promise.all(
        Array.from({ length: 40 }, async (_, i) => {
          const t = tenants[i % 2]!;
          const page = await get(t, paths[Math.floor(i / 2) % paths.length]!);
          return { host: t.host, ok: page.body.includes(t.store) && !page.body.includes(tenants[(i + 1) % 2]!.store) };
        }),
      );
      expect(answers.filter((a) => !a.ok)).toEqual([]);
      expect(snapshot(checkout)).toBe(snapshotBefore);
      expect(execFileSync('git', ['-C', checkout, 'status', '--porcelain', '--ignored'], { encoding: 'utf8' })).toBe('');
    });
  });

  /** A home built as the engine's tree step does (its tree plan), with the templates rendered: relative links into the checkout. */
  function buildHome(home: string, values: Record<string, string>, webUid: number, webGid: number) {
    const plan = planTree(MANIFEST, checkoutEntries(checkout));
    mkdirSync(home, { recursive: true });
    for (const dir of plan.dirs) mkdirSync(join(home, dir), { recursive: true });
    for (const link of plan.links) symlinkSync(relative(dirname(join(home, link.path)), join(checkout, link.target)), join(home, link.path));
    for (const copy of plan.copies) cpSync(join(checkout, copy), join(home, copy), { recursive: true });
    for (const dir of plan.writable) {
      mkdirSync(join(home, dir), { recursive: true });
      execFileSync('chown', [`${webUid}:${webGid}`, join(home, dir)]);
    }
    for (const template of MANIFEST.templates!) {
      writeFileSync(join(home, template.target), renderTemplate(readFileSync(join(checkout, template.source), 'utf8'), template.language, values, template.source), { mode: 0o644 });
    }
    // What the plan links (the entry points) is the checkout's; what it makes real (upload, admin, image) is the home's.
    expect(lstatSync(join(home, 'upload/index.php')).isSymbolicLink()).toBe(true);
    expect(lstatSync(join(home, 'upload/admin')).isDirectory()).toBe(true);
    expect(lstatSync(join(home, 'upload/image/catalog')).isDirectory()).toBe(true);
  }

  function installSqlByHand(secrets: Record<string, string>, store: string, email: string): string {
    const bcrypt = execFileSync('php', ['-r', 'echo password_hash($argv[1], PASSWORD_BCRYPT);', secrets.admin_password!], { encoding: 'utf8' });
    const legacy = sha1(secrets.admin_salt! + sha1(secrets.admin_salt! + sha1(secrets.admin_password!)));
    const source = readFileSync(join(checkout, MANIFEST.sql!.templates![0]!.file), 'utf8')
      .replace('{{ bcrypt(secret.admin_password) }}', escapeFor('sql', bcrypt))
      .replace('{{ sha1(concat(secret.admin_salt, sha1(concat(secret.admin_salt, sha1(secret.admin_password))))) }}', escapeFor('sql', legacy));
    const rendered = renderTemplate(source, 'sql', { store_name: store, admin_email: email, 'secret.admin_salt': secrets.admin_salt! }, 'install.sql');
    return prepareDumpByHand(rendered, strip, prefix.placeholder, prefix.value);
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

function checkoutEntries(root: string): CheckoutEntry[] {
  const walk = (dir: string): CheckoutEntry[] =>
    readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) => {
      const path = dir ? `${dir}/${e.name}` : e.name;
      if (path === '.git') return [];
      if (e.isSymbolicLink()) return [{ type: 'l' as const, path }];
      return e.isDirectory() ? [{ type: 'd' as const, path }, ...walk(path)] : [{ type: 'f' as const, path }];
    });
  return walk('');
}

/** Every entry of a tree with its mode, size and mtime (.git included): what a write anywhere would change. */
function snapshot(root: string): string {
  const walk = (dir: string): string[] =>
    readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) => {
      const path = dir ? `${dir}/${e.name}` : e.name;
      const s = statSync(join(root, path));
      const line = `${path} ${s.mode.toString(8)} ${s.size} ${s.mtimeMs}`;
      return e.isDirectory() ? [line, ...walk(path)] : [line];
    });
  return walk('').sort().join('\n');
}
