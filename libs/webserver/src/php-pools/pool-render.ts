import { posix } from 'node:path';
import { PHP_SESSIONS_DIR, PHP_TMP_DIR } from './pool-names.js';

/**
 * The php-fpm pools of one handler, as a pure function of catalog state:
 * one file per install, `<fsName>.conf`, holding its pool `[<fsName>]`.
 * Same input, byte-identical output. Every value is checked against what
 * php-fpm's ini syntax takes before it is written: an install with a value
 * that does not pass is refused (named, quarantined), never written into a
 * file that could break the others or smuggle a directive in.
 */

/** Where one install's pool listens: a unix socket (the handler is its dispatcher), or a port on the handler's private IP. */
export type PoolListen = { socket: string } | { ip: string; port: number; allowedClients: readonly string[] };

export interface PoolSetting {
  name: string;
  value: string;
}

export interface PoolInstallInput {
  id: number;
  fsName: string;
  /** System user and group the pool's workers run as (`shop<id>`). */
  user: string;
  /** The install's home on this handler. */
  home: string;
  /** Its group's shared code release on this handler (the checkout its home links into). */
  codeDir: string;
  listen: PoolListen;
  /** The manifest's `php.settings`, as `php_admin_value`s. */
  settings: readonly PoolSetting[];
  /** Why the install cannot be rendered at all (no pool port, a manifest that does not parse): refused, named, quarantined. */
  refusal?: string;
}

export interface HandlerPoolsInput {
  /** The handler's php-fpm pool dir (generations, logs, run live under it). */
  poolDir: string;
  /** nginx's user and group: the owner of the pools' sockets. */
  listenOwner: string;
  listenGroup: string;
  installs: readonly PoolInstallInput[];
}

export interface RenderedPools {
  /** `<fsName>.conf` → content. */
  files: Map<string, string>;
  refused: { id: number; fsName: string; error: string }[];
}

export class PoolRenderError extends Error {
  override name = 'PoolRenderError';
}

/** Workers per pool (ondemand: started by a request, gone after the idle timeout). */
export const POOL_MAX_CHILDREN = 5;
export const POOL_IDLE_TIMEOUT = '10s';
export const POOL_LOGS_DIR = 'logs';

const FS_NAME = /^[a-z][a-z0-9]{0,31}$/;
const SYSTEM_NAME = /^[a-z_][a-z0-9_-]{0,31}$/;
/** A path as written unquoted into a pool file: no space, quote, `;`, `$`, `=` or line break. */
const PATH = /^\/[A-Za-z0-9._@+\/-]*$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;
const IPV6 = /^[0-9a-f:]+$/i;
const SETTING_NAME = /^[a-z][a-z0-9_.]{0,63}$/;
/**
 * A setting's value, written in double quotes: printable ASCII without the
 * characters php-fpm's ini reader treats inside them (`"`, `\`, `$` of a
 * `${...}` expansion), and no `;` (a comment in an unquoted ini value: refused
 * everywhere rather than reasoned about).
 */
const SETTING_VALUE = /^[\x20-\x7e]{0,1024}$/;
const SETTING_VALUE_FORBIDDEN = /["\\$;]/;
/** A value that needs no quotes. */
const PLAIN = /^[A-Za-z0-9._\/:,@+-]+$/;

/**
 * What the engine sets itself for every pool: a manifest may not set these
 * to another value (the isolation between tenants rests on them), nor load
 * code into every request.
 */
const RESERVED = new Set(['open_basedir', 'opcache.use_cwd', 'opcache.validate_root', 'opcache.revalidate_path', 'realpath_cache_size', 'session.save_path', 'upload_tmp_dir', 'sys_temp_dir']);
const REFUSED = new Set(['extension', 'zend_extension', 'extension_dir', 'auto_prepend_file', 'auto_append_file', 'opcache.restrict_api', 'user_ini.filename']);

export const poolFile = (fsName: string) => `${fsName}.conf`;
export const poolAccessLog = (poolDir: string, fsName: string) => posix.join(poolDir, POOL_LOGS_DIR, `${fsName}.access.log`);

function check(ok: boolean, what: string, value: unknown): void {
  if (!ok) throw new PoolRenderError(`${what} ${JSON.stringify(value)} cannot go into a pool file`);
}

function checkPath(what: string, path: string): string {
  check(typeof path === 'string' && PATH.test(path) && !path.split('/').includes('..'), what, path);
  return path;
}

function checkIp(what: string, ip: string): string {
  check(typeof ip === 'string' && (IPV4.test(ip) || (IPV6.test(ip) && ip.includes(':'))), what, ip);
  return ip;
}

/** A value as php-fpm reads it back unchanged: bare when it can be, else in double quotes. */
export function iniValue(value: string): string {
  return PLAIN.test(value) ? value : `"${value}"`;
}

/** The pool file of one install; throws PoolRenderError on any value that does not pass. */
export function renderPool(input: Omit<HandlerPoolsInput, 'installs'>, install: PoolInstallInput): string {
  if (install.refusal !== undefined) throw new PoolRenderError(install.refusal);
  check(FS_NAME.test(install.fsName), 'the fs name', install.fsName);
  check(SYSTEM_NAME.test(install.user), 'the user', install.user);
  check(SYSTEM_NAME.test(input.listenOwner), 'the listen owner', input.listenOwner);
  check(SYSTEM_NAME.test(input.listenGroup), 'the listen group', input.listenGroup);
  const poolDir = checkPath('the pool dir', input.poolDir);
  const home = checkPath('the home', install.home);
  check(home !== '/', 'the home', home);
  const codeDir = checkPath('the shared code release', install.codeDir);
  check(codeDir !== '/', 'the shared code release', codeDir);
  const tmp = posix.join(home, PHP_TMP_DIR);
  const lines = [
    `; install ${install.id}: written by the provisioning engine, replaced at every pool rebuild`,
    `[${install.fsName}]`,
    `user = ${install.user}`,
    `group = ${install.user}`,
  ];
  if ('socket' in install.listen) {
    lines.push(`listen = ${checkPath('the socket', install.listen.socket)}`, `listen.owner = ${input.listenOwner}`, `listen.group = ${input.listenGroup}`, 'listen.mode = 0660');
  } else {
    const ip = checkIp('the listen IP', install.listen.ip);
    const port = install.listen.port;
    check(Number.isInteger(port) && port >= 1 && port <= 65535, 'the port', port);
    const clients = [...new Set(install.listen.allowedClients.map((c) => checkIp('an allowed client', c)))].sort();
    check(clients.length > 0, 'the allowed clients', clients);
    lines.push(`listen = ${ip.includes(':') ? `[${ip}]` : ip}:${port}`, `listen.allowed_clients = ${clients.join(',')}`);
  }
  lines.push(
    'pm = ondemand',
    `pm.max_children = ${POOL_MAX_CHILDREN}`,
    `pm.process_idle_timeout = ${POOL_IDLE_TIMEOUT}`,
    `access.log = ${poolAccessLog(poolDir, install.fsName)}`,
    'catch_workers_output = yes',
  );
  const own = new Map<string, string>([
    ['open_basedir', `${home}:${codeDir}:${tmp}`],
    ['opcache.use_cwd', '1'],
    ['opcache.validate_root', '1'],
    // A rollout switches the home's `.code` link (code-layout.ts): each request resolves its paths anew (no per-worker realpath cache,
    // whose entries would point at the old release for up to realpath_cache_ttl) and opcache keys scripts by their resolved path, so
    // every release has its own entries and a switch takes effect at the next request, without reloading php-fpm or resetting opcache.
    ['opcache.revalidate_path', '1'],
    ['realpath_cache_size', '0'],
    ['session.save_path', posix.join(home, PHP_SESSIONS_DIR)],
    ['upload_tmp_dir', tmp],
    ['sys_temp_dir', tmp],
  ]);
  for (const [name, value] of own) lines.push(`php_admin_value[${name}] = ${value}`);
  const seen = new Set<string>();
  for (const s of install.settings) {
    check(typeof s.name === 'string' && SETTING_NAME.test(s.name), 'the PHP setting', s.name);
    check(typeof s.value === 'string' && SETTING_VALUE.test(s.value) && !SETTING_VALUE_FORBIDDEN.test(s.value), `the value of PHP setting ${s.name}`, s.value);
    if (REFUSED.has(s.name)) throw new PoolRenderError(`the PHP setting ${s.name} may not be set by a manifest`);
    if (seen.has(s.name)) throw new PoolRenderError(`the PHP setting ${s.name} is given twice`);
    seen.add(s.name);
    if (RESERVED.has(s.name)) {
      // The engine's own value: a manifest may repeat it, never change it.
      if (own.get(s.name) === iniValue(s.value)) continue;
      throw new PoolRenderError(`the PHP setting ${s.name} is the engine's (${own.get(s.name)}): a manifest may not set it to ${JSON.stringify(s.value)}`);
    }
    lines.push(`php_admin_value[${s.name}] = ${iniValue(s.value)}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Every install's pool file; an install with a value that does not pass is refused, the others rendered. */
export function renderPools(input: HandlerPoolsInput): RenderedPools {
  const files = new Map<string, string>();
  const refused: RenderedPools['refused'] = [];
  for (const install of [...input.installs].sort((a, b) => (a.fsName < b.fsName ? -1 : a.fsName > b.fsName ? 1 : 0))) {
    try {
      if (!FS_NAME.test(install.fsName)) throw new PoolRenderError(`the fs name ${JSON.stringify(install.fsName)} cannot name a pool`);
      if (files.has(poolFile(install.fsName))) throw new PoolRenderError(`two installs share the fs name ${install.fsName}`);
      files.set(poolFile(install.fsName), renderPool(input, install));
    } catch (error) {
      if (!(error instanceof PoolRenderError)) throw error;
      refused.push({ id: install.id, fsName: install.fsName, error: error.message });
    }
  }
  return { files, refused };
}
