import { mkdir, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { dirname, join } from 'node:path';
import { simpleGit } from 'simple-git';
import type { CodebaseManifest } from '@app/codebases';

/**
 * A second fixture codebase, shaped like a typical third-party PHP shop
 * (OpenCart's layout, in miniature), for the tests of issue 14: the document
 * root `upload/` with a front controller that routes `?_route_=<path>`, an
 * administration in its own real subdirectory with its own config file, an
 * image directory whose files are checked by `realpath` prefix, long
 * generated keys, an SQL dump in the shop's own format (lines of dashes, an
 * `oc_` table prefix, a stored function in a DELIMITER block, utf8mb4 demo
 * data, inserts that only a lax SQL mode accepts), and the first admin users
 * created by an install SQL template from a generated password.
 *
 * Its code keeps to what a shop does, not to what the engine would find
 * convenient: the entry points `require_once('config.php')` relative to the
 * working directory (php-fpm's is the script's directory in the home, the
 * script itself a link into the shared checkout), and the image check
 * compares the resolved path with DIR_IMAGE as configured.
 */
export const THIRD_PARTY_SHOP_MANIFEST: CodebaseManifest = {
  version: 1,
  // The shop's catalog images are the customer's: copied, so their real path lies in the home (the image check needs it).
  copy: ['upload/image/catalog'],
  exclude: ['install'],
  writable: ['upload/system/storage', 'upload/image/cache'],
  templates: [
    { source: 'install/config.php.tpl', target: 'upload/config.php', language: 'php' },
    { source: 'install/admin-config.php.tpl', target: 'upload/admin/config.php', language: 'php' },
  ],
  secrets: [
    { name: 'encryption_key', length: 1024, alphabet: 'symbols' },
    { name: 'api_key', length: 256, alphabet: 'alnum' },
    { name: 'admin_password', length: 16, alphabet: 'alnum' },
    { name: 'admin_salt', length: 9, alphabet: 'alnum' },
  ],
  credentials: [
    { label: 'Admin user', value: 'admin' },
    { label: 'Admin password', value: '{{secret.admin_password}}' },
  ],
  // Only extensions this machine's php-fpm has (`php-fpm8.2 -m`): no mbstring here.
  php: { minVersion: '7.4', extensions: ['pdo_mysql', 'openssl', 'json'] },
  sql: {
    updates: 'install',
    templates: [{ event: 'install', file: 'install/templates/install.sql' }],
    // OpenCart's own driver sets this mode: its dump and its code rely on lax inserts (a NOT NULL column left out).
    session: { sqlMode: 'NO_ZERO_IN_DATE,NO_ENGINE_SUBSTITUTION', charset: 'utf8mb4' },
    stripLinePrefixes: ['--', '#'],
    tablePrefix: { placeholder: 'oc_', value: 'shop_' },
  },
  cachePaths: ['upload/system/storage/cache'],
  web: {
    documentRoot: 'upload',
    phpEntryPoints: ['index.php', 'admin/index.php'],
    frontController: 'index.php',
    routing: { pass: 'query', param: '_route_', notFound: ['*.png', '*.jpg', '*.gif', '*.css', '*.js', '*.ico'] },
    denyPatterns: ['*.tpl', '*.twig', '*.ini', '*.log', '*.sql', '.*'],
  },
} as CodebaseManifest;

/** What the tests expect of the fixture (values its dump and code hold). */
export const THIRD_PARTY_SHOP_EXPECTED = {
  tablePrefix: 'shop_',
  /** The admin users the install SQL template creates (both with the generated admin password). */
  adminUser: 'admin',
  legacyUser: 'legacy',
  /** A routed URL: a keyword of the shop's SEO table, not a file. */
  categoryRoute: 'some-category',
  categoryName: 'Desktops & Macs',
  /** A product name with 4-byte UTF-8: the dump's utf8mb4 data, as PHP prints it. */
  productName: 'Fahrrad 🚲 Größe L',
  productCount: 3,
  /** The cheapest price, formatted by the dump's stored function. */
  cheapest: '$12.50',
  /** A setting whose string holds `;`, `--` and `oc_`: none of them may be touched by the splitter or the prefix. */
  metaDescription: "Spare parts; -- and oc_ in a string stay as they are, it's said",
  /** A catalog image (copied per install), and where the image tool caches its copy. */
  image: 'catalog/demo/logo.png',
  cachedImage: 'cache/catalog/demo/logo-100x100.png',
  /** Files the web server must refuse (403): a theme template, a twig template, the rendered configs; the log is written by PHP on a 404. */
  denied: ['/catalog/view/theme/default/template/product/category.tpl', '/admin/view/template/common/login.twig', '/config.php', '/admin/config.php', '/.htaccess.txt', '/php.ini'],
  errorLog: '/system/storage/logs/error.log',
  /** A static file that is served. */
  stylesheet: '/catalog/view/theme/default/stylesheet/stylesheet.css',
  stylesheetBody: 'body { color: #333; }\n',
  /** Missing files that must answer nginx's 404 (routing.notFound), not the shop's. */
  missingImage: '/image/catalog/no-such-file.png',
} as const;

// A 1x1 transparent PNG.
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=', 'base64');

const CONFIG_TEMPLATE = [
  '<?php',
  '// Rendered per install by the hosting engine from install/config.php.tpl (the shop\'s config-dist.php).',
  '// HTTP',
  'define(\'HTTP_SERVER\', {{url}});',
  'define(\'HTTPS_SERVER\', {{secure_url}});',
  '',
  '// DIR',
  'define(\'DIR_OPENCART\', {{home}} . \'/upload/\');',
  'define(\'DIR_APPLICATION\', DIR_OPENCART . \'catalog/\');',
  'define(\'DIR_SYSTEM\', DIR_OPENCART . \'system/\');',
  'define(\'DIR_IMAGE\', DIR_OPENCART . \'image/\');',
  'define(\'DIR_STORAGE\', DIR_SYSTEM . \'storage/\');',
  'define(\'DIR_TEMPLATE\', DIR_APPLICATION . \'view/theme/\');',
  'define(\'DIR_CACHE\', DIR_STORAGE . \'cache/\');',
  'define(\'DIR_LOGS\', DIR_STORAGE . \'logs/\');',
  '',
  '// DB',
  'define(\'DB_DRIVER\', \'pdo\');',
  'define(\'DB_HOSTNAME\', {{db_host}});',
  'define(\'DB_USERNAME\', {{db_user}});',
  'define(\'DB_PASSWORD\', {{db_password}});',
  'define(\'DB_DATABASE\', {{db_name}});',
  'define(\'DB_PORT\', (int) {{db_port}});',
  'define(\'DB_PREFIX\', {{table_prefix}});',
  '',
  '// Store',
  'define(\'STORE_NAME\', {{store_name}});',
  'define(\'STORE_EMAIL\', {{admin_email}});',
  'define(\'ENCRYPTION_KEY\', {{secret.encryption_key}});',
  'define(\'API_KEY\', {{secret.api_key}});',
  '',
].join('\n');

const ADMIN_CONFIG_TEMPLATE = [
  '<?php',
  '// Rendered per install by the hosting engine from install/admin-config.php.tpl (admin/config-dist.php).',
  '// HTTP',
  'define(\'HTTP_SERVER\', rtrim({{url}}, \'/\') . \'/admin/\');',
  'define(\'HTTPS_SERVER\', rtrim({{secure_url}}, \'/\') . \'/admin/\');',
  'define(\'HTTP_CATALOG\', {{url}});',
  'define(\'HTTPS_CATALOG\', {{secure_url}});',
  '',
  '// DIR',
  'define(\'DIR_OPENCART\', {{home}} . \'/upload/\');',
  'define(\'DIR_APPLICATION\', DIR_OPENCART . \'admin/\');',
  'define(\'DIR_SYSTEM\', DIR_OPENCART . \'system/\');',
  'define(\'DIR_IMAGE\', DIR_OPENCART . \'image/\');',
  'define(\'DIR_STORAGE\', DIR_SYSTEM . \'storage/\');',
  'define(\'DIR_CATALOG\', DIR_OPENCART . \'catalog/\');',
  'define(\'DIR_LOGS\', DIR_STORAGE . \'logs/\');',
  '',
  '// DB',
  'define(\'DB_DRIVER\', \'pdo\');',
  'define(\'DB_HOSTNAME\', {{db_host}});',
  'define(\'DB_USERNAME\', {{db_user}});',
  'define(\'DB_PASSWORD\', {{db_password}});',
  'define(\'DB_DATABASE\', {{db_name}});',
  'define(\'DB_PORT\', (int) {{db_port}});',
  'define(\'DB_PREFIX\', {{table_prefix}});',
  '',
  '// Store',
  'define(\'STORE_NAME\', {{store_name}});',
  'define(\'ENCRYPTION_KEY\', {{secret.encryption_key}});',
  'define(\'API_KEY\', {{secret.api_key}});',
  '',
].join('\n');

const DB_LIBRARY = `<?php
// The shop's database access (OpenCart's PDO driver, in short): DB_* come from the entry point's config.php.
function shop_db(): PDO {
    static $pdo = null;
    if ($pdo === null) {
        $dsn = 'mysql:host=' . DB_HOSTNAME . ';port=' . (int) DB_PORT . ';dbname=' . DB_DATABASE . ';charset=utf8mb4';
        $pdo = new PDO($dsn, DB_USERNAME, DB_PASSWORD, [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION]);
        $pdo->exec("SET SESSION sql_mode = 'NO_ZERO_IN_DATE,NO_ENGINE_SUBSTITUTION'");
    }
    return $pdo;
}

function shop_setting(PDO $db, string $key): string {
    $stmt = $db->prepare('SELECT \`value\` FROM \`' . DB_PREFIX . 'setting\` WHERE store_id = 0 AND \`code\` = ? AND \`key\` = ?');
    $stmt->execute(['config', $key]);
    return (string) $stmt->fetchColumn();
}
`;

const USER_LIBRARY = `<?php
// The administration's login: bcrypt hashes (password_verify), or OpenCart 2's salted SHA-1 chain for older users.
function admin_login(PDO $db, string $username, string $password): ?string {
    $stmt = $db->prepare('SELECT username, password, salt FROM \`' . DB_PREFIX . 'user\` WHERE username = ? AND status = 1');
    $stmt->execute([$username]);
    $row = $stmt->fetch(PDO::FETCH_ASSOC);
    if (!$row || $password === '') {
        return null;
    }
    if (strncmp($row['password'], '$', 1) === 0) {
        $ok = password_verify($password, $row['password']);
    } else {
        $ok = hash_equals($row['password'], sha1($row['salt'] . sha1($row['salt'] . sha1($password))));
    }
    return $ok ? $row['username'] : null;
}
`;

const IMAGE_LIBRARY = `<?php
// OpenCart's image tool check: the file's real path must start with DIR_IMAGE as configured (not resolved).
function image_real_path(string $filename): ?string {
    $file = DIR_IMAGE . $filename;
    if (!is_file($file)) {
        return null;
    }
    $real = str_replace('\\\\', '/', (string) realpath($file));
    if (substr($real, 0, strlen(DIR_IMAGE)) !== str_replace('\\\\', '/', DIR_IMAGE)) {
        return null;
    }
    return $real;
}

// The resized copy, cached in image/cache (the install's writable directory).
function image_resize(string $filename, int $width, int $height): string {
    $info = pathinfo($filename);
    $cached = 'cache/' . $info['dirname'] . '/' . $info['filename'] . '-' . $width . 'x' . $height . '.' . $info['extension'];
    if (!is_file(DIR_IMAGE . $cached)) {
        if (!is_dir(dirname(DIR_IMAGE . $cached))) {
            mkdir(dirname(DIR_IMAGE . $cached), 0775, true);
        }
        copy(DIR_IMAGE . $filename, DIR_IMAGE . $cached);
    }
    return $cached;
}
`;

const FRONT_CONTROLLER = `<?php
// The storefront's front controller: the web server passes the path as ?_route_=<path>, the original query kept.
if (is_file('config.php')) {
    require_once('config.php');
}
if (!defined('DIR_SYSTEM')) {
    http_response_code(500);
    exit("not configured\\n");
}
require_once(DIR_SYSTEM . 'library/db.php');
require_once(DIR_SYSTEM . 'library/image.php');

header('Content-Type: text/plain; charset=utf-8');
$route = trim((string) ($_GET['_route_'] ?? ($_GET['route'] ?? '')), '/');
$query = $_GET;
unset($query['_route_'], $query['route']);
$db = shop_db();

function page(PDO $db, string $route, array $query, array $lines): void {
    echo 'store: ', STORE_NAME, "\\n";
    echo 'db-store: ', shop_setting($db, 'config_name'), "\\n";
    echo 'route: ', $route, "\\n";
    echo 'query: ', http_build_query($query), "\\n";
    echo 'remote: ', $_SERVER['REMOTE_ADDR'] ?? '', "\\n";
    foreach ($lines as $line) {
        echo $line, "\\n";
    }
}

if ($route === '' || $route === 'common/home') {
    $count = (int) $db->query('SELECT COUNT(*) FROM \`' . DB_PREFIX . 'product\` WHERE status = 1')->fetchColumn();
    $cheapest = (string) $db->query('SELECT \`' . DB_PREFIX . 'format_price\`(MIN(price)) FROM \`' . DB_PREFIX . 'product\`')->fetchColumn();
    $name = (string) $db->query('SELECT name FROM \`' . DB_PREFIX . 'product_description\` WHERE product_id = 42 AND language_id = 1')->fetchColumn();
    page($db, $route, $query, [
        'url: ' . HTTP_SERVER,
        'secure-url: ' . HTTPS_SERVER,
        'email: ' . shop_setting($db, 'config_email'),
        'meta: ' . shop_setting($db, 'config_meta_description'),
        'products: ' . $count,
        'cheapest: ' . $cheapest,
        'product: ' . $name,
        'encryption-key: ' . strlen(ENCRYPTION_KEY) . ' ' . sha1(ENCRYPTION_KEY),
        'api-key: ' . strlen(API_KEY) . ' ' . sha1(API_KEY),
    ]);
    exit;
}

if ($route === 'tool/image') {
    $filename = (string) ($_GET['f'] ?? '');
    $real = image_real_path($filename);
    if ($real === null) {
        http_response_code(403);
        page($db, $route, $query, ['image: refused ' . $filename]);
        exit;
    }
    page($db, $route, $query, ['image: ' . $filename . ' ' . filesize($real) . ' bytes', 'cached: ' . image_resize($filename, 100, 100)]);
    exit;
}

// SEO keywords (a category, a product...) are rows of the shop's own table.
$stmt = $db->prepare('SELECT \`query\` FROM \`' . DB_PREFIX . 'seo_url\` WHERE keyword = ? AND store_id = 0');
$stmt->execute([$route]);
$target = $stmt->fetchColumn();
if ($target !== false && preg_match('/^category_id=(\\d+)$/', (string) $target, $m)) {
    $stmt = $db->prepare('SELECT name FROM \`' . DB_PREFIX . 'category_description\` WHERE category_id = ? AND language_id = 1');
    $stmt->execute([(int) $m[1]]);
    page($db, $route, $query, ['category: ' . $stmt->fetchColumn()]);
    exit;
}

// Anything else: the shop's own "page not found", logged in its storage.
if (!is_dir(DIR_LOGS)) {
    mkdir(DIR_LOGS, 0775, true);
}
file_put_contents(DIR_LOGS . 'error.log', date('c') . ' 404 ' . $route . "\\n", FILE_APPEND);
http_response_code(404);
page($db, $route, $query, ['error: page not found']);
`;

const ADMIN_ENTRY = `<?php
// The administration: its own entry point, with its own config.php beside it.
if (is_file('config.php')) {
    require_once('config.php');
}
if (!defined('DIR_SYSTEM')) {
    http_response_code(500);
    exit("not configured\\n");
}
require_once(DIR_SYSTEM . 'library/db.php');
require_once(DIR_SYSTEM . 'library/user.php');

header('Content-Type: text/plain; charset=utf-8');
if (($_SERVER['REQUEST_METHOD'] ?? 'GET') === 'POST') {
    $user = admin_login(shop_db(), (string) ($_POST['username'] ?? ''), (string) ($_POST['password'] ?? ''));
    if ($user === null) {
        http_response_code(403);
        echo 'wrong username or password at ', STORE_NAME, "\\n";
        exit;
    }
    echo 'logged in as ', $user, ' at ', STORE_NAME, "\\n";
    exit;
}
echo STORE_NAME, " administration\\n";
echo 'catalog: ', HTTP_CATALOG, "\\n";
echo 'users: ', (int) shop_db()->query('SELECT COUNT(*) FROM \`' . DB_PREFIX . 'user\`')->fetchColumn(), "\\n";
echo '<form method="post" action="', HTTP_SERVER, '"><input name="username"><input name="password" type="password"><button>Login</button></form>', "\\n";
`;

/** The shop's install SQL template: its first admin users, hashed by the engine from the generated password, and the store's name and email. */
export const THIRD_PARTY_SHOP_INSTALL_SQL = [
  '-- The first administrators and the store\'s own settings, per install.',
  'DELETE FROM `oc_user` WHERE user_id IN (1, 2);',
  'INSERT INTO `oc_user` (user_id, user_group_id, username, password, salt, firstname, lastname, email, status, date_added)',
  '  VALUES (1, 1, \'admin\', {{ bcrypt(secret.admin_password) }}, \'\', \'Shop\', \'Owner\', {{admin_email}}, 1, NOW());',
  '-- OpenCart 2 stored SHA-1(salt . SHA-1(salt . SHA-1(password))): a user migrated from it.',
  'INSERT INTO `oc_user` (user_id, user_group_id, username, password, salt, firstname, lastname, email, status, date_added)',
  '  VALUES (2, 1, \'legacy\', {{ sha1(concat(secret.admin_salt, sha1(concat(secret.admin_salt, sha1(secret.admin_password))))) }}, {{secret.admin_salt}}, \'Old\', \'Owner\', {{admin_email}}, 1, NOW());',
  'UPDATE `oc_setting` SET `value` = {{store_name}} WHERE store_id = 0 AND `code` = \'config\' AND `key` = \'config_name\';',
  'UPDATE oc_setting SET `value` = {{admin_email}} WHERE store_id = 0 AND `code` = \'config\' AND `key` = \'config_email\';',
  '',
].join('\n');

/** The shop's database dump, in its own format: its installer strips `--` and `#` lines and replaces the `oc_` prefix. */
export const THIRD_PARTY_SHOP_DUMP = `----------------------------------------------------------------
-- OpenCart-style database: loaded by the shop's own installer,
-- which drops every line starting with -- or # and replaces oc_.
----------------------------------------------------------------
# Server version 10.11 (dumped by the shop's release tool)

--
-- Table structure for table \`oc_setting\`
--

DROP TABLE IF EXISTS \`oc_setting\`;
CREATE TABLE \`oc_setting\` (
  \`setting_id\` int(11) NOT NULL AUTO_INCREMENT,
  \`store_id\` int(11) NOT NULL DEFAULT '0',
  \`code\` varchar(128) NOT NULL,
  \`key\` varchar(128) NOT NULL,
  \`value\` text NOT NULL,
  \`serialized\` tinyint(1) NOT NULL,
  PRIMARY KEY (\`setting_id\`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

----------------------------------------------------------------
-- Dumping data for table \`oc_setting\` (serialized left out: a lax SQL mode fills it)
----------------------------------------------------------------
INSERT INTO \`oc_setting\` (\`store_id\`, \`code\`, \`key\`, \`value\`) VALUES
(0, 'config', 'config_name', 'Your Store'),
(0, 'config', 'config_email', 'demo@opencart.example'),
(0, 'config', 'config_meta_description', 'Spare parts; -- and oc_ in a string stay as they are, it''s said'),
(0, 'config', 'config_file_ext_allowed', 'zip\\ntxt\\npng\\njpg'),
(0, 'config', 'config_language', 'en-gb');

DROP TABLE IF EXISTS \`oc_user_group\`;
CREATE TABLE \`oc_user_group\` (
  \`user_group_id\` int(11) NOT NULL AUTO_INCREMENT,
  \`name\` varchar(64) NOT NULL,
  \`permission\` text NOT NULL,
  PRIMARY KEY (\`user_group_id\`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

INSERT INTO \`oc_user_group\` (\`user_group_id\`, \`name\`, \`permission\`) VALUES
(1, 'Administrator', '{"access":["catalog/category","catalog/product"],"modify":["catalog/category","catalog/product"]}'),
(10, 'Demonstration', '');

DROP TABLE IF EXISTS \`oc_user\`;
CREATE TABLE \`oc_user\` (
  \`user_id\` int(11) NOT NULL AUTO_INCREMENT,
  \`user_group_id\` int(11) NOT NULL,
  \`username\` varchar(20) NOT NULL,
  \`password\` varchar(255) NOT NULL,
  \`salt\` varchar(9) NOT NULL,
  \`firstname\` varchar(32) NOT NULL,
  \`lastname\` varchar(32) NOT NULL,
  \`email\` varchar(96) NOT NULL,
  \`image\` varchar(255) NOT NULL,
  \`code\` varchar(40) NOT NULL,
  \`ip\` varchar(40) NOT NULL,
  \`status\` tinyint(1) NOT NULL,
  \`date_added\` datetime NOT NULL,
  PRIMARY KEY (\`user_id\`),
  UNIQUE KEY \`username\` (\`username\`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

#
# Categories and their paths
#
DROP TABLE IF EXISTS \`oc_category\`;
CREATE TABLE \`oc_category\` (
  \`category_id\` int(11) NOT NULL AUTO_INCREMENT,
  \`image\` varchar(255) DEFAULT NULL,
  \`parent_id\` int(11) NOT NULL DEFAULT '0',
  \`sort_order\` int(3) NOT NULL DEFAULT '0',
  \`status\` tinyint(1) NOT NULL,
  \`date_added\` datetime NOT NULL,
  \`date_modified\` datetime NOT NULL,
  PRIMARY KEY (\`category_id\`),
  KEY \`parent_id\` (\`parent_id\`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

INSERT INTO \`oc_category\` (\`category_id\`, \`image\`, \`parent_id\`, \`sort_order\`, \`status\`, \`date_added\`, \`date_modified\`) VALUES
(20, 'catalog/demo/logo.png', 0, 1, 1, '2009-01-05 21:49:43', '2011-07-16 18:14:12'),
(25, '', 0, 3, 1, '2009-01-31 01:04:25', '0000-00-00 00:00:00');

DROP TABLE IF EXISTS \`oc_category_description\`;
CREATE TABLE \`oc_category_description\` (
  \`category_id\` int(11) NOT NULL,
  \`language_id\` int(11) NOT NULL,
  \`name\` varchar(255) NOT NULL,
  \`description\` text NOT NULL,
  PRIMARY KEY (\`category_id\`, \`language_id\`),
  KEY \`name\` (\`name\`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

INSERT INTO \`oc_category_description\` (\`category_id\`, \`language_id\`, \`name\`, \`description\`) VALUES
(20, 1, 'Desktops & Macs', '<p>Example of a category description; with a semicolon</p>'),
(25, 1, 'Components', '');

DROP TABLE IF EXISTS \`oc_product\`;
CREATE TABLE \`oc_product\` (
  \`product_id\` int(11) NOT NULL AUTO_INCREMENT,
  \`model\` varchar(64) NOT NULL,
  \`sku\` varchar(64) NOT NULL,
  \`location\` varchar(128) NOT NULL,
  \`quantity\` int(4) NOT NULL DEFAULT '0',
  \`image\` varchar(255) DEFAULT NULL,
  \`price\` decimal(15,4) NOT NULL DEFAULT '0.0000',
  \`status\` tinyint(1) NOT NULL DEFAULT '0',
  \`date_available\` date NOT NULL DEFAULT '0000-00-00',
  PRIMARY KEY (\`product_id\`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

INSERT INTO oc_product (product_id, model, quantity, image, price, status, date_available) VALUES
(28, 'Product 1', 939, 'catalog/demo/logo.png', '100.0000', 1, '2009-02-03'),
(40, 'product 11', 970, '', '101.0000', 1, '0000-00-00'),
(42, 'Product 15', 990, '', '12.5000', 1, '2009-02-04');

DROP TABLE IF EXISTS \`oc_product_description\`;
CREATE TABLE \`oc_product_description\` (
  \`product_id\` int(11) NOT NULL,
  \`language_id\` int(11) NOT NULL,
  \`name\` varchar(255) NOT NULL,
  \`description\` text NOT NULL,
  \`tag\` text NOT NULL,
  PRIMARY KEY (\`product_id\`, \`language_id\`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

INSERT INTO \`oc_product_description\` (\`product_id\`, \`language_id\`, \`name\`, \`description\`) VALUES
(28, 1, 'HTC Touch HD', '<p>It\\'s a phone</p>'),
(40, 1, 'iPhone', 'A "smart" phone;\\r\\nsecond line'),
(42, 1, 'Fahrrad 🚲 Größe L', 'Ein Rad für alle Wege ✓');

DROP TABLE IF EXISTS \`oc_product_to_category\`;
CREATE TABLE \`oc_product_to_category\` (
  \`product_id\` int(11) NOT NULL,
  \`category_id\` int(11) NOT NULL,
  PRIMARY KEY (\`product_id\`, \`category_id\`),
  KEY \`category_id\` (\`category_id\`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

INSERT INTO \`oc_product_to_category\` (\`product_id\`, \`category_id\`) VALUES (28, 20), (40, 20), (42, 25);

DROP TABLE IF EXISTS \`oc_seo_url\`;
CREATE TABLE \`oc_seo_url\` (
  \`seo_url_id\` int(11) NOT NULL AUTO_INCREMENT,
  \`store_id\` int(11) NOT NULL,
  \`language_id\` int(11) NOT NULL,
  \`query\` varchar(255) NOT NULL,
  \`keyword\` varchar(255) NOT NULL,
  PRIMARY KEY (\`seo_url_id\`),
  KEY \`keyword\` (\`keyword\`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

INSERT INTO \`oc_seo_url\` (\`store_id\`, \`language_id\`, \`query\`, \`keyword\`) VALUES
(0, 1, 'category_id=20', 'some-category'),
(0, 1, 'category_id=25', 'component'),
(0, 1, 'product_id=42', 'fahrrad');

DROP TABLE IF EXISTS \`oc_session\`;
CREATE TABLE \`oc_session\` (
  \`session_id\` varchar(32) NOT NULL,
  \`data\` text NOT NULL,
  \`expire\` datetime NOT NULL,
  PRIMARY KEY (\`session_id\`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

----------------------------------------------------------------
-- A stored function, as the shop's dump carries it
----------------------------------------------------------------
DROP FUNCTION IF EXISTS \`oc_format_price\`;
DELIMITER ;;
CREATE FUNCTION \`oc_format_price\`(p DECIMAL(15,4)) RETURNS varchar(32) CHARSET utf8mb4
    DETERMINISTIC
BEGIN
  DECLARE s VARCHAR(32);
  SET s = CONCAT('$', FORMAT(p, 2));
  RETURN s;
END;;
DELIMITER ;
`;

/** The repository's files: the install SQL dump and templates under `install/`, the shop under `upload/`. */
export function thirdPartyShopFiles(): Record<string, string | Buffer> {
  return {
    'hosting.manifest.json': `${JSON.stringify(THIRD_PARTY_SHOP_MANIFEST, null, 2)}\n`,
    'README.md': '# A third-party shop (fixture)\n\nOpenCart\'s layout in miniature: the tests of the hosting engine host it as customers\' shops are hosted.\n',
    'install/opencart.sql': THIRD_PARTY_SHOP_DUMP,
    'install/templates/install.sql': THIRD_PARTY_SHOP_INSTALL_SQL,
    'install/config.php.tpl': CONFIG_TEMPLATE,
    'install/admin-config.php.tpl': ADMIN_CONFIG_TEMPLATE,
    'install/index.php': "<?php\n// The shop's own web installer: never linked into a hosted home.\necho 'installer';\n",
    'upload/index.php': FRONT_CONTROLLER,
    'upload/robots.txt': 'User-agent: *\nDisallow: /admin/\n',
    'upload/.htaccess.txt': '# Rename to .htaccess for Apache (SEO URLs)\nRewriteEngine On\nRewriteRule ^([^?]*) index.php?_route_=$1 [L,QSA]\n',
    'upload/php.ini': 'memory_limit = 128M\n',
    'upload/admin/index.php': ADMIN_ENTRY,
    'upload/admin/view/template/common/login.twig': '<form>{{ username }} {{ password }}</form>\n',
    'upload/admin/view/stylesheet/stylesheet.css': 'body { font-size: 12px; }\n',
    'upload/catalog/view/theme/default/template/product/category.tpl': '<h1><?php echo $heading_title; ?></h1>\n',
    'upload/catalog/view/theme/default/template/common/home.twig': '<div id="content">{{ content_top }}</div>\n',
    'upload/catalog/view/theme/default/stylesheet/stylesheet.css': THIRD_PARTY_SHOP_EXPECTED.stylesheetBody,
    'upload/catalog/view/javascript/common.js': 'function getURLVar(key) { return key; }\n',
    'upload/catalog/controller/startup/startup.php': "<?php\n// Not an entry point: reached only through index.php.\nclass ControllerStartupStartup {}\n",
    'upload/system/library/db.php': DB_LIBRARY,
    'upload/system/library/user.php': USER_LIBRARY,
    'upload/system/library/image.php': IMAGE_LIBRARY,
    'upload/system/storage/logs/index.html': '',
    'upload/system/storage/cache/index.html': '',
    'upload/image/catalog/demo/logo.png': PNG,
    'upload/image/catalog/demo/banner.png': PNG,
    'upload/image/cache/index.html': '',
  };
}

export interface ThirdPartyShopRepository {
  /** Directory of the repository (clone it with this path). */
  path: string;
  /** The one commit on `main`. */
  revision: string;
}

/** Builds the third-party shop fixture as a git repository in `dir` (created), one commit on `main`. */
export async function buildThirdPartyShopRepository(dir: string, options: { files?: Record<string, string | Buffer> } = {}): Promise<ThirdPartyShopRepository> {
  await mkdir(dir, { recursive: true });
  const git = simpleGit({ baseDir: dir }).env({ PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir });
  await git.init(['--quiet', '--initial-branch=main']);
  await git.addConfig('user.name', 'Third-party shop fixture').addConfig('user.email', 'fixture@example.invalid');
  for (const [path, content] of Object.entries({ ...thirdPartyShopFiles(), ...options.files })) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), content);
  }
  await git.add('.');
  await git.commit('A third-party shop, OpenCart-style');
  return { path: dir, revision: (await git.revparse(['HEAD'])).trim() };
}

export interface PostAnswer {
  status: number;
  body: string;
}

/** A form POST (application/x-www-form-urlencoded) to `ip:port` with a Host header, on a new connection. */
export function postForm(ip: string, hostname: string, path: string, form: Record<string, string>, port = 80): Promise<PostAnswer> {
  const body = new URLSearchParams(form).toString();
  return new Promise((resolve, reject) => {
    const req = request(
      { host: ip, port, path, method: 'POST', agent: false, timeout: 5_000, headers: { Host: hostname, 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.once('timeout', () => req.destroy(new Error('timed out')));
    req.once('error', reject);
    req.end(body);
  });
}

/** A mail's text body (quoted-printable or base64 decoded), from the raw message the test SMTP server kept. */
export function mailText(raw: string): string {
  const split = raw.search(/\r?\n\r?\n/);
  const headers = raw.slice(0, split);
  let body = raw.slice(split).replace(/^\r?\n\r?\n/, '');
  const encoding = /^content-transfer-encoding:\s*(\S+)/im.exec(headers)?.[1]?.toLowerCase();
  if (encoding === 'quoted-printable') {
    body = Buffer.from(
      body.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/gi, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16))),
      'latin1',
    ).toString('utf8');
  } else if (encoding === 'base64') {
    body = Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
  }
  return body.replace(/\r\n/g, '\n');
}

/** `Label: value` of a credential in the welcome mail's text. */
export function mailCredential(text: string, label: string): string | null {
  const escaped = label.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^\\s*${escaped}:\\s*(\\S+)\\s*$`, 'm').exec(text)?.[1] ?? null;
}
