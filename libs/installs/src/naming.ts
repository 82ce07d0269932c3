/**
 * Names derived for an install. The fs name is the home directory and the
 * database user, so it keeps to what every tool accepts: lower-case letters
 * and digits, starting with a letter. MySQL allows 64 characters in a
 * database name and 32 in a user name (MySQL 8; MariaDB allows 80).
 */
export const FS_NAME_BASE_LENGTH = 10;
export const FS_NAME_MAX = 16;
export const DB_NAME_PREFIX = 'shop_';

/** `www.Bio-Ex.co.uk` → `bioexcouk`; the first letters of the first hostname, as the seed does. */
export function fsNameBase(hostname: string): string {
  const letters = hostname
    .toLowerCase()
    .replace(/^www\d*\./, '')
    .replace(/[^a-z0-9]/g, '');
  const base = /^[a-z]/.test(letters) ? letters : `s${letters}`;
  return base.slice(0, FS_NAME_BASE_LENGTH);
}

/**
 * Names an order never gets for its home and database user, whatever its
 * hostname: accounts and directories a server or database server already
 * has (`ro.ot` must not become the database user `root`, `ce.rts` the
 * certificates root), and the engine's own directory names.
 */
export const RESERVED_NAMES: ReadonlySet<string> = new Set([
  'root', 'admin', 'administrator', 'mysql', 'mariadb', 'mariadbsys', 'mysqlsys', 'sys', 'debiansysmaint', 'daemon', 'bin', 'sync', 'games',
  'man', 'lp', 'mail', 'news', 'uucp', 'proxy', 'wwwdata', 'www', 'backup', 'list', 'irc', 'gnats', 'nobody', 'nogroup', 'systemd', 'messagebus',
  'sshd', 'nginx', 'phpfpm', 'ftp', 'proftpd', 'postfix', 'sphinx', 'memcache', 'keepalived', 'pdns', 'home', 'shared', 'sharedcodes', 'certs',
  'cron', 'crond', 'tmp', 'current', 'generations', 'lastgood', 'tests', 'upstreams', 'shops', 'releases', 'var', 'etc', 'usr', 'srv', 'run',
]);

/**
 * The names of the directories that lie in a home root (a root of the
 * server placed inside it: its first segment there), in the form of fs
 * names: an install named so would be that directory.
 */
export function namesInHomeRoot(server: { homeRoot: string; roots: readonly string[] }): string[] {
  const home = server.homeRoot.replace(/\/+$/, '');
  return server.roots
    .filter((r) => r.startsWith(`${home}/`))
    .map((r) => r.slice(home.length + 1).split('/')[0]!)
    .flatMap((segment) => [segment, segment.toLowerCase().replace(/[^a-z0-9]/g, '')]);
}

/** Candidates in order: `base`, `base1`, `base2`, ... skipping the taken ones. */
export function nextFsName(base: string, taken: ReadonlySet<string>): string {
  if (!taken.has(base)) return base;
  for (let n = 1; ; n++) {
    const candidate = `${base}${n}`;
    if (candidate.length > FS_NAME_MAX) throw new Error(`no free fs name left for ${base}`);
    if (!taken.has(candidate)) return candidate;
  }
}

export function dbNameFor(fsName: string): string {
  return `${DB_NAME_PREFIX}${fsName}`;
}
