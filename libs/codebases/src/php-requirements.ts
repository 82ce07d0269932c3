import type { Server, SharedCodeGroup } from '@app/catalog';
import type { HostExecutor } from '@app/hosts';
import type { ManifestPhp } from './manifest.js';

/**
 * Whether a server's PHP satisfies a manifest's `php` requirements: its
 * version, extensions and the ini settings the shop depends on.
 *
 * Which settings an install's pool can apply was measured on php-fpm 8.2,
 * not taken from the PHP_INI_* access levels: FPM sets a pool's
 * `php_admin_value` straight into the master value (fpm_php.c,
 * fpm_php_zend_ini_alter_master), so PHP_INI_SYSTEM directives such as
 * `expose_php`, `allow_url_fopen` or `realpath_cache_size` do change per
 * pool. What a pool cannot change is what php-fpm's master settled at
 * startup for every pool at once:
 * - the extensions loaded (a package on the server, not a setting);
 * - OPcache's shared memory (`opcache.memory_consumption` and the like):
 *   a pool's value shows in ini_get but the master's memory stays;
 * - functions and classes disabled in php.ini: a pool's `disable_functions`
 *   disables more, never enables one again (ini_get shows the pool's list
 *   while the function stays gone);
 * - `opcache.enable` can be switched off per pool, never on;
 * - `zend.assertions` cannot move to or from -1 after startup.
 */

/** Where the values came from: the php-fpm binary (its own php.ini), or the CLI when the server has no php-fpm. */
export type PhpSource = 'fpm' | 'cli';

/** What a server's PHP says about itself. */
export interface PhpProbe {
  binary: string;
  source: PhpSource;
  /** `8.2.36`, or null when the output named none. */
  version: string | null;
  /** Module names as `-m` prints them (PHP and Zend modules). */
  modules: string[];
  /** Every directive `-i` lists, by name: its local value ('' for "no value"). */
  ini: Record<string, string>;
}

export type PhpSettingStatus = 'same' | 'pool' | 'unsatisfiable';

export interface PhpSettingCheck {
  name: string;
  wanted: string;
  /** The server's value; null when its PHP has no such directive. */
  actual: string | null;
  /** same: already so; pool: differs, the install's pool applies it; unsatisfiable: a pool cannot (a problem). */
  status: PhpSettingStatus;
  detail: string;
}

/** One server's answer to a manifest's `php`. */
export interface PhpServerCheck {
  serverId: number;
  hostname: string;
  ok: boolean;
  binary: string | null;
  source: PhpSource | null;
  version: string | null;
  /** Why the server does not satisfy the manifest; empty when ok. */
  problems: string[];
  missingExtensions: string[];
  settings: PhpSettingCheck[];
  /** Informational lines (the CLI was used, settings the pool applies). */
  notes: string[];
  /** Why the server could not be asked (unreachable, a command failed or timed out): neither a pass nor a refusal. */
  error: string | null;
}

/** A group's check: every server that runs PHP for it (or the one asked about). */
export interface PhpCheckReport {
  groupId: number;
  group: string;
  /** Whether the manifest states PHP requirements; without them every server with PHP passes. */
  required: boolean;
  ok: boolean;
  servers: PhpServerCheck[];
}

export interface PhpComparison {
  ok: boolean;
  problems: string[];
  missingExtensions: string[];
  settings: PhpSettingCheck[];
  notes: string[];
}

/** php-fpm binaries found on a server, one path a line (the fixed listing script of probePhp). */
const FPM_NAME = /^(?:.*\/)?php-fpm(\d+(?:\.\d+)?)?$/;

/**
 * The php-fpm a server runs shops with: among the binaries found, the
 * highest versioned one (php-fpm8.10 after php-fpm8.9), else a plain
 * `php-fpm`; between equals, the first listed (the listing goes from
 * /usr/sbin, so a merged-/usr `/sbin` copy is not preferred). Null when none.
 */
export function pickPhpFpmBinary(paths: readonly string[]): string | null {
  const found = paths.map((p) => p.trim()).filter((p) => FPM_NAME.test(p));
  if (found.length === 0) return null;
  const versionOf = (p: string) => (FPM_NAME.exec(p)![1] ?? '').split('.').filter(Boolean).map(Number);
  // Array.prototype.sort is stable: equal versions keep the listing's order.
  return [...found].sort((a, b) => compareVersions(versionOf(b), versionOf(a)))[0]!;
}

/** The version in `php -v` output (`PHP 8.2.36 (fpm-fcgi)`, `PHP 8.2.7-1~deb12u1 (cli)`), or the `PHP Version => ...` line of `-i`. */
export function parsePhpVersion(text: string): string | null {
  const m = /^PHP (\d+\.\d+(?:\.\d+)?)/m.exec(text) ?? /^PHP Version => (\d+\.\d+(?:\.\d+)?)/m.exec(text);
  return m ? m[1]! : null;
}

/** Module names of `php -m` output: the lines under `[PHP Modules]` and `[Zend Modules]`, headers and blanks dropped, each once. */
export function parsePhpModules(text: string): string[] {
  const modules: string[] = [];
  let inSection = false;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (/^\[.*\]$/.test(line)) {
      inSection = /^\[(PHP|Zend) Modules\]$/i.test(line);
      continue;
    }
    // PHP prints warnings (a missing .so) on the same stream: never a module name.
    if (!inSection || line === '' || /^(PHP )?(Warning|Notice|Fatal error|Deprecated)\b/i.test(line)) continue;
    if (!modules.includes(line)) modules.push(line);
  }
  return modules;
}

const DIRECTIVE = /^[A-Za-z_][A-Za-z0-9_.]*$/;

/**
 * Directives of `php -i` (text phpinfo): the rows of each
 * `Directive => Local Value => Master Value` table, up to the blank line
 * that ends it; `no value` is ''. A value holding ` => ` itself is split
 * back by the row's symmetry (local and master take as many pieces each).
 */
export function parsePhpInfoDirectives(text: string): Record<string, string> {
  const ini: Record<string, string> = {};
  let inTable = false;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/\s+$/, '');
    if (/^Directive => Local Value => Master Value$/.test(line)) {
      inTable = true;
      continue;
    }
    if (line === '') {
      inTable = false;
      continue;
    }
    if (!inTable) continue;
    const parts = line.split(' => ');
    const name = parts[0]!;
    if (parts.length < 3 || !DIRECTIVE.test(name)) continue;
    const values = parts.slice(1);
    const local = values.length % 2 === 0 ? values.slice(0, values.length / 2).join(' => ') : values.slice(0, -1).join(' => ');
    ini[name] = local === 'no value' ? '' : local;
  }
  return ini;
}

/** Names modules go by besides the one `-m` prints (lower case). */
const EXTENSION_ALIASES: Record<string, string> = {
  'zend opcache': 'opcache',
  'zend_opcache': 'opcache',
  'the ioncube php loader': 'ioncube',
  'ioncube loader': 'ioncube',
  'ioncube_loader': 'ioncube',
  'zend guard loader': 'zend_guard_loader',
  'xdebug': 'xdebug',
  'libsodium': 'sodium',
  'pdo-mysql': 'pdo_mysql',
};

/** A module's name as compared: case, surrounding blanks and known aliases (`Zend OPcache` is `opcache`) set aside. */
export function normalizeExtension(name: string): string {
  const lower = name.trim().toLowerCase().replace(/\s+/g, ' ');
  return EXTENSION_ALIASES[lower] ?? lower;
}

/**
 * Read once by php-fpm's master for every pool (OPcache's shared memory and
 * its file cache, preloading): a pool's value would show in ini_get and do
 * nothing.
 */
const STARTUP_ONLY = new Set([
  'opcache.memory_consumption',
  'opcache.interned_strings_buffer',
  'opcache.max_accelerated_files',
  'opcache.jit_buffer_size',
  'opcache.huge_code_pages',
  'opcache.file_cache',
  'opcache.file_cache_only',
  'opcache.file_cache_consistency_checks',
  'opcache.preload',
  'opcache.preload_user',
  'opcache.lockfile_path',
  'opcache.mmap_base',
  'opcache.cache_id',
  'opcache.enable_cli',
]);
/** Sizes and counts where a server giving more than asked satisfies the shop. */
const AT_LEAST = new Set(['opcache.memory_consumption', 'opcache.interned_strings_buffer', 'opcache.max_accelerated_files', 'opcache.jit_buffer_size']);
/** Lists a pool can add to and never take from. */
const ADDITIVE_LISTS = new Set(['disable_functions', 'disable_classes']);
/** Loading code is not a setting: `php.extensions` says what must be there. */
const NOT_SETTINGS = new Set(['extension', 'zend_extension', 'extension_dir']);

const BOOLEAN_WORDS: Record<string, string> = { '': '0', '0': '0', off: '0', no: '0', false: '0', none: '0', '1': '1', on: '1', yes: '1', true: '1' };
const SIZE = /^(-?\d+)\s*([KMG]?)$/i;

/** A size or count in bytes/units (`128M`, `2G`, `10000`, `-1`), or null when the value is none. */
function sizeOf(value: string): number | null {
  const m = SIZE.exec(value.trim());
  if (!m) return null;
  const unit = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2]!.toUpperCase()]!;
  return Number(m[1]) * unit;
}

function listOf(value: string): string[] {
  return [...new Set(value.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean))];
}

/** Whether two ini values mean the same: booleans in any spelling, sizes in any unit, lists in any order; else the same text. */
export function sameIniValue(name: string, wanted: string, actual: string): boolean {
  const a = wanted.trim();
  const b = actual.trim();
  if (ADDITIVE_LISTS.has(name)) {
    const [x, y] = [listOf(a), listOf(b)];
    return x.length === y.length && x.every((f) => y.includes(f));
  }
  if (a.toLowerCase() in BOOLEAN_WORDS && b.toLowerCase() in BOOLEAN_WORDS) return BOOLEAN_WORDS[a.toLowerCase()] === BOOLEAN_WORDS[b.toLowerCase()];
  const [x, y] = [sizeOf(a), sizeOf(b)];
  if (x !== null && y !== null) return x === y;
  return a === b;
}

/** Compares version numbers piece by piece (a missing piece is 0). */
function compareVersions(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

const versionNumbers = (v: string) => v.split('.').map(Number);

/** One wanted setting against the server's value. */
export function checkSetting(name: string, wanted: string, ini: Readonly<Record<string, string>>): PhpSettingCheck {
  const shown = (v: string) => (v === '' ? '(no value)' : v);
  if (NOT_SETTINGS.has(name)) {
    return { name, wanted, actual: null, status: 'unsatisfiable', detail: `${name} is not a setting a shop can ask for: list modules in php.extensions` };
  }
  if (!Object.hasOwn(ini, name)) {
    return { name, wanted, actual: null, status: 'unsatisfiable', detail: `${name} is not a directive this PHP knows (is the extension that defines it missing?)` };
  }
  const actual = ini[name]!;
  const result = (status: PhpSettingStatus, detail: string): PhpSettingCheck => ({ name, wanted, actual, status, detail });
  if (AT_LEAST.has(name)) {
    const [w, a] = [sizeOf(wanted), sizeOf(actual)];
    if (w !== null && a !== null && a >= w) return result('same', a === w ? 'as wanted' : `the server has more (${actual}) than asked`);
  }
  if (sameIniValue(name, wanted, actual)) return result('same', 'as wanted');
  const pool = `the server has ${shown(actual)}; the install's pool sets ${shown(wanted)}`;
  if (STARTUP_ONLY.has(name)) {
    return result('unsatisfiable', `the server has ${shown(actual)}, the shop needs ${shown(wanted)}: read when php-fpm starts, for every pool at once (php.ini of the server)`);
  }
  if (ADDITIVE_LISTS.has(name)) {
    const needed = listOf(actual).filter((f) => !listOf(wanted).includes(f));
    if (needed.length > 0) {
      return result('unsatisfiable', `the server's php.ini disables ${needed.join(', ')}, which the shop needs: a pool can disable more, never enable one again`);
    }
    return result('pool', `${pool} (disables more)`);
  }
  if (name === 'opcache.enable' && BOOLEAN_WORDS[wanted.trim().toLowerCase()] === '1') {
    return result('unsatisfiable', 'OPcache is off in the server\'s php.ini: a pool can switch it off, never on');
  }
  if (name === 'zend.assertions' && (wanted.trim() === '-1' || actual.trim() === '-1')) {
    return result('unsatisfiable', `the server has ${actual}, the shop needs ${wanted}: zend.assertions moves to or from -1 only in php.ini`);
  }
  return result('pool', pool);
}

/**
 * A probe against a manifest's `php`: the version at least minVersion, every
 * extension loaded (case and aliases aside), every setting either as wanted,
 * applied by the install's pool (noted) or out of a pool's reach (a problem).
 */
export function comparePhp(requirements: ManifestPhp | undefined, probe: PhpProbe): PhpComparison {
  const problems: string[] = [];
  const notes: string[] = [];
  if (probe.source === 'cli') notes.push(`no php-fpm found: ${probe.binary} (the CLI) was asked; php-fpm's php.ini and modules may differ`);
  const php = requirements ?? {};
  if (php.minVersion) {
    if (!probe.version) problems.push(`the PHP version could not be read from ${probe.binary} (the shop needs ${php.minVersion} or later)`);
    else if (compareVersions(versionNumbers(probe.version), versionNumbers(php.minVersion)) < 0) problems.push(`PHP ${probe.version} is older than the ${php.minVersion} the shop needs`);
  }
  const loaded = new Set(probe.modules.map(normalizeExtension));
  const missingExtensions = (php.extensions ?? []).filter((e) => !loaded.has(normalizeExtension(e)));
  if (missingExtensions.length > 0) problems.push(`missing PHP extensions: ${missingExtensions.join(', ')}`);
  const settings = (php.settings ?? []).map((s) => checkSetting(s.name, s.value, probe.ini));
  for (const s of settings) {
    if (s.status === 'unsatisfiable') problems.push(`${s.name}: ${s.detail}`);
    if (s.status === 'pool') notes.push(`${s.name}: ${s.detail}`);
  }
  return { ok: problems.length === 0, problems, missingExtensions, settings, notes };
}

/**
 * The servers that run PHP for a group's installs: its master and every
 * other active dispatcher or handler, the servers its checkout is synced
 * to. Installs are served by php-fpm on their own servers, which are
 * dispatchers (the webserver lib's backends), and handlers run php-fpm by
 * role. Cloud handlers get the checkout when they are added, not here.
 */
export function phpServersOf(servers: readonly Server[], group: Pick<SharedCodeGroup, 'masterServerId'>): Server[] {
  return servers.filter((s) => s.id === group.masterServerId || (s.state === 'active' && s.roles.some((r) => r === 'dispatcher' || r === 'handler')));
}

/** Lists the php-fpm binaries in the system directories: a fixed script, nothing of ours interpolated. */
const LIST_FPM = 'for d in /usr/sbin /usr/local/sbin /usr/bin /usr/local/bin /sbin /bin; do for f in "$d"/php-fpm "$d"/php-fpm[0-9]*; do [ -f "$f" ] && [ -x "$f" ] && printf "%s\\n" "$f"; done; done; exit 0';
const PROBE_TIMEOUT_MS = 30_000;

/**
 * Asks a server's PHP (argument vectors over its executor): the newest
 * php-fpm found, else the `php` CLI (and says so). Null when the server has
 * neither. Throws when the server cannot be reached.
 */
export async function probePhp(executor: HostExecutor, server: Server): Promise<PhpProbe | null> {
  const listed = await executor.mustRun(server, ['sh', '-c', LIST_FPM], { timeoutMs: PROBE_TIMEOUT_MS });
  const fpm = pickPhpFpmBinary(listed.split('\n'));
  if (!fpm && (await executor.run(server, ['php', '-v'], { timeoutMs: PROBE_TIMEOUT_MS })).exitCode !== 0) return null;
  const binary = fpm ?? 'php';
  const source: PhpSource = fpm ? 'fpm' : 'cli';
  const ask = async (flag: string) => {
    const r = await executor.run(server, [binary, flag], { timeoutMs: PROBE_TIMEOUT_MS });
    // php exits 0 even with startup warnings (a missing .so) on stderr: the answer is stdout.
    if (r.exitCode !== 0) throw new Error(`${binary} ${flag} failed on ${server.hostname} (exit ${r.exitCode}): ${r.stderr.trim().slice(0, 500)}`);
    return r.stdout;
  };
  const [v, m, i] = await Promise.all([ask('-v'), ask('-m'), ask('-i')]);
  return { binary, source, version: parsePhpVersion(v) ?? parsePhpVersion(i), modules: parsePhpModules(m), ini: parsePhpInfoDirectives(i) };
}

/**
 * One server checked against a manifest's `php`. A server that cannot be
 * asked is reported with its `error` (not ok, no verdict on its PHP); one
 * with no PHP at all fails.
 */
export async function checkServerPhp(executor: HostExecutor, server: Server, requirements: ManifestPhp | undefined): Promise<PhpServerCheck> {
  const base = { serverId: server.id, hostname: server.hostname, binary: null, source: null, version: null, missingExtensions: [], settings: [], notes: [], error: null };
  let probe: PhpProbe | null;
  try {
    probe = await probePhp(executor, server);
  } catch (error) {
    return { ...base, ok: false, problems: [], error: error instanceof Error ? error.message : String(error) };
  }
  const none = 'no PHP on the server (no php-fpm in the system directories, no php on PATH)';
  // Without requirements nothing is needed of PHP: said, not held against the server.
  if (!probe) return requirements ? { ...base, ok: false, problems: [none] } : { ...base, ok: true, problems: [], notes: [none] };
  return { serverId: server.id, hostname: server.hostname, binary: probe.binary, source: probe.source, version: probe.version, error: null, ...comparePhp(requirements, probe) };
}

/** A refusal's text: each failing server with its problems. */
export function describePhpFailures(checks: readonly PhpServerCheck[]): string {
  return checks
    .filter((c) => !c.ok)
    .map((c) => `${c.hostname}: ${c.error ? `could not be asked (${c.error})` : c.problems.join('; ')}`)
    .join(' | ');
}
