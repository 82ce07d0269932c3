import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { simpleGit } from 'simple-git';
import type { CodebaseManifest } from './manifest.js';

/**
 * The sample shop codebase, with the seed's layout: `heavymetal/` (lib,
 * theme, snippets, config template, SQL updates) and `html/` (the document
 * root with `mas_assets`). The tests provision from it, and the embedded
 * default seeds its first code group from it, so `npm start` can provision
 * at once.
 */
export const SAMPLE_MANIFEST: CodebaseManifest = {
  version: 1,
  copy: ['heavymetal/theme', 'heavymetal/snippets', 'html/mas_assets/theme'],
  exclude: ['install'],
  links: [{ path: 'html/lib', target: 'heavymetal/lib' }],
  writable: ['heavymetal/tmp', 'heavymetal/cache', 'html/mas_assets/uploads'],
  templates: [{ source: 'heavymetal/config.php.tpl', target: 'heavymetal/config.php', language: 'php' }],
  secrets: [
    { name: 'cookie_key', length: 32, alphabet: 'alnum' },
    { name: 'admin_password', length: 16, alphabet: 'alnum' },
    { name: 'encryption_key', length: 1024, alphabet: 'symbols' },
  ],
  credentials: [
    { label: 'Admin user', value: 'admin' },
    { label: 'Admin password', value: '{{secret.admin_password}}' },
  ],
  sql: {
    updates: 'heavymetal/sql/updates',
    templates: [{ event: 'install', file: 'heavymetal/sql/templates/install.sql' }],
    session: { sqlMode: 'STRICT_TRANS_TABLES,NO_ZERO_DATE', charset: 'utf8mb4' },
  },
  cachePaths: ['heavymetal/cache'],
  crons: [{ schedule: '*/5 * * * *', command: ['php', 'heavymetal/cron.php'] }],
  web: { documentRoot: 'html', phpEntryPoints: ['index.php'], deny: ['mas_assets/theme/private'], frontController: 'index.php' },
} as CodebaseManifest;

// Its SQL keeps to what MySQL and SQLite both run: the embedded default's tenant databases are SQLite files.
const REVISION_1: Record<string, string> = {
  'hosting.manifest.json': `${JSON.stringify(SAMPLE_MANIFEST, null, 2)}\n`,
  'README.md': '# Sample shop codebase\n\nA tiny shop with the layout the hosting engine expects.\n',
  'heavymetal/lib/shop.php': "<?php\nfunction shop_name(array $config): string { return $config['store_name']; }\n",
  'heavymetal/lib/db.php': "<?php\nfunction shop_db(array $config): PDO {\n  return new PDO($config['db_dsn'], $config['db_user'], $config['db_password'], [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION]);\n}\n",
  'heavymetal/theme/default/layout.html': '<!doctype html><title>{title}</title><body>{content}</body>\n',
  'heavymetal/snippets/hello.php': "<?php\necho 'hello from a snippet';\n",
  'heavymetal/config.php.tpl': [
    '<?php',
    '// Rendered per install by the hosting engine; do not edit.',
    'return [',
    "  'db_host' => {{db_host}},",
    "  'db_port' => {{db_port}},",
    "  'db_dsn' => {{db_dsn}},",
    "  'db_name' => {{db_name}},",
    "  'db_user' => {{db_user}},",
    "  'db_password' => {{db_password}},",
    "  'hostname' => {{hostname}},",
    "  'secure_hostname' => {{secure_hostname}},",
    "  'store_name' => {{store_name}},",
    "  'admin_email' => {{admin_email}},",
    "  'locale' => {{locale}},",
    "  'url' => {{url}},",
    "  'secure_url' => {{secure_url}},",
    "  'db_socket' => {{db_socket}},",
    "  'encryption_key' => {{secret.encryption_key}},",
    "  'home' => {{home}},",
    "  'shared_code' => {{shared_code}},",
    "  'memcache_prefix' => {{memcache_prefix}},",
    "  'sphinx_index' => {{sphinx_index}},",
    "  'cookie_key' => {{secret.cookie_key}},",
    '];',
    '',
  ].join('\n'),
  'heavymetal/sql/updates/0001_base.sql': [
    '-- The shop\'s first tables.',
    'CREATE TABLE settings (name VARCHAR(64) PRIMARY KEY, value TEXT NOT NULL);',
    '/* a block comment; with a semicolon */',
    "INSERT INTO settings (name, value) VALUES ('greeting', 'Welcome; enjoy the shop');",
    'CREATE TABLE products (id INTEGER PRIMARY KEY, title VARCHAR(255) NOT NULL, price DECIMAL(10,2) NOT NULL);',
    '',
  ].join('\n'),
  'heavymetal/sql/templates/install.sql': "INSERT INTO settings (name, value) VALUES ('hostname', {{hostname}});\nINSERT INTO settings (name, value) VALUES ('store_name', {{store_name}});\n",
  'heavymetal/cron.php': "<?php\n// Runs every five minutes for each install.\n",
  'heavymetal/tmp/.keep': '',
  // The front page reads its greeting from the tenant database: answering proves the files, the config, the database user and its grants.
  // The home's paths come from DOCUMENT_ROOT: this file is a link into the shared checkout, and __DIR__ would be the checkout's.
  'html/index.php': [
    '<?php',
    "$home = dirname($_SERVER['DOCUMENT_ROOT']);",
    "$config = require $home . '/heavymetal/config.php';",
    "require $home . '/heavymetal/lib/db.php';",
    "$greeting = shop_db($config)->query(\"SELECT value FROM settings WHERE name = 'greeting'\")->fetchColumn();",
    "header('Content-Type: text/plain; charset=utf-8');",
    "echo 'shop ', $config['hostname'], ': ', $greeting, \"\\n\";",
    '',
  ].join('\n'),
  'html/robots.txt': 'User-agent: *\nDisallow:\n',
  'html/mas_assets/theme/style.css': 'body { font-family: sans-serif; }\n',
  'html/mas_assets/js/app.js': 'console.log("shop");\n',
  'install/setup.php': "<?php\n// Installer of the standalone shop; never linked into a hosted home.\n",
};

const REVISION_2: Record<string, string> = {
  'heavymetal/sql/updates/0002_orders.sql': [
    'CREATE TABLE orders (',
    '  id INTEGER PRIMARY KEY,',
    "  status VARCHAR(16) NOT NULL DEFAULT 'new', -- 'new; paid' are statuses",
    '  total DECIMAL(10,2) NOT NULL',
    ');',
    "INSERT INTO settings (name, value) VALUES ('orders', 'enabled');",
    '',
  ].join('\n'),
  'heavymetal/lib/shop.php': "<?php\nfunction shop_name(array $config): string { return $config['store_name'] ?? 'shop'; }\n",
};

/** A third revision, on the `broken` branch: an SQL update that fails. */
const REVISION_BROKEN: Record<string, string> = {
  'heavymetal/sql/updates/0003_broken.sql': "INSERT INTO settings (name, value) VALUES ('ok', 'yes');\nINSERT INTO no_such_table (id) VALUES (1);\n",
};

export interface SampleRepository {
  /** Directory of the repository (clone it with this path or `file://` + it). */
  path: string;
  /** Commits on `main`, oldest first (two revisions). */
  revisions: string[];
  /** A commit on branch `broken`, after the last revision: its SQL update fails. */
  broken: string;
}

/** Builds the sample codebase as a git repository in `dir` (created), with its revisions. */
export async function buildSampleRepository(dir: string): Promise<SampleRepository> {
  await mkdir(dir, { recursive: true });
  // A minimal environment: no user git config (HOME is the repository) in play.
  const git = simpleGit({ baseDir: dir }).env({
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: dir,
  });
  await git.init(['--quiet', '--initial-branch=main']);
  await git.addConfig('user.name', 'Hosting engine sample').addConfig('user.email', 'sample@example.invalid');
  const commit = async (files: Record<string, string>, message: string) => {
    for (const [path, content] of Object.entries(files)) {
      await mkdir(dirname(join(dir, path)), { recursive: true });
      await writeFile(join(dir, path), content);
    }
    await git.add('.');
    await git.commit(message);
    return (await git.revparse(['HEAD'])).trim();
  };
  const revisions = [await commit(REVISION_1, 'Sample shop: first revision'), await commit(REVISION_2, 'Sample shop: orders')];
  await git.checkoutLocalBranch('broken');
  const broken = await commit(REVISION_BROKEN, 'An SQL update that fails');
  await git.checkout('main');
  return { path: dir, revisions, broken };
}
