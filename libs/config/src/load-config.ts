import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { userInfo } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { ConfigError } from './config.errors.js';
import {
  ENGINE_ROLES,
  LOG_LEVELS,
  type CatalogConfig,
  type EngineConfig,
  type EngineRole,
  type LogLevel,
} from './engine-config.js';
import { SecretsKeyring } from './secrets-keyring.js';

/** Every environment variable the engine reads; the README documents each. */
export const CONFIG_KEYS = [
  'CATALOG_URL',
  'CATALOG_POOL_SIZE',
  'MIGRATIONS_RUN',
  'HOST',
  'PORT',
  'ENGINE_ROLES',
  'SECRETS_KEY',
  'SECRETS_KEY_PREVIOUS',
  'SMTP_URL',
  'SSH_KEY_PATH',
  'LOG_LEVEL',
  'VAR_DIR',
  'WORKER_CONCURRENCY',
  'WORKER_POLL_MS',
  'WORKER_WAKE_ADDRESS',
  'WEB_USER',
  'ALLOW_LOCAL_TRANSPORT',
  'ORDERS_PER_MINUTE',
  'MAX_SITES_FREE',
  'MAX_SITES_PAID',
  'OPS_EMAIL',
  'DNS_API_URL',
  'DNS_API_KEY',
  'DNS_SERVER_ID',
  'DNS_TTL',
  'ACME_DIRECTORY_URL',
  'ACME_EMAIL',
  'ACME_CA_FILE',
  'ACME_RENEW_DAYS',
  'ACME_PREFLIGHT_RESOLVER',
  'BACKUP_GRACE_DAYS',
  'METRICS_TOKEN',
  'IP_POOL_LOW_WATER',
  'SEARCH_PORT',
  'FTP_ENABLED',
  'FTP_PORT',
  'FTP_PASSIVE_PORTS',
  'FTP_ADDRESS',
  'FTP_CATALOG_HOST',
] as const;
export type ConfigKey = (typeof CONFIG_KEYS)[number];
export type ConfigEnv = Partial<Record<ConfigKey, string | undefined>>;

export interface LoadConfigOptions {
  /** Base for relative paths (default: the process working directory). */
  cwd?: string;
}

type Problem = { key: ConfigKey; problem: string };

/**
 * Builds and validates the engine configuration from environment variables.
 * Every bad key is reported at once. On the embedded default (SQLite), a
 * missing SECRETS_KEY is generated once into `<VAR_DIR>/secrets.key`.
 */
export function loadConfig(env: ConfigEnv, options: LoadConfigOptions = {}): EngineConfig {
  const cwd = options.cwd ?? process.cwd();
  const problems: Problem[] = [];
  const value = (key: ConfigKey): string | undefined => {
    const raw = env[key];
    return raw === undefined || raw.trim() === '' ? undefined : raw.trim();
  };
  const fail = (key: ConfigKey, problem: string) => problems.push({ key, problem });

  const varDir = resolve(cwd, value('VAR_DIR') ?? 'var');

  // The default catalog lives with the rest of the local state: VAR_DIR moves it too.
  const catalog = parseCatalogUrl(value('CATALOG_URL') ?? `sqlite:${join(varDir, 'engine.sqlite')}`, cwd, (p) =>
    fail('CATALOG_URL', p),
  );

  const migrationsRun = parseBoolean(value('MIGRATIONS_RUN') ?? 'true', (p) => fail('MIGRATIONS_RUN', p));

  const host = value('HOST') ?? '127.0.0.1';
  if (!/^[A-Za-z0-9.:-]+$/.test(host)) fail('HOST', `must be an IP address or hostname (got "${host}")`);

  const portText = value('PORT') ?? '3000';
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) {
    fail('PORT', `must be an integer between 0 and 65535, 0 for any free port (got "${portText}")`);
  }

  const roles = parseRoles(value('ENGINE_ROLES') ?? ENGINE_ROLES.join(','), (p) => fail('ENGINE_ROLES', p));

  const integer = (key: ConfigKey, fallback: number, min: number, max: number): number => {
    const text = value(key) ?? String(fallback);
    const n = Number(text);
    if (!/^\d+$/.test(text) || n < min || n > max) fail(key, `must be an integer from ${min} to ${max} (got "${text}")`);
    return n;
  };
  const workerConcurrency = integer('WORKER_CONCURRENCY', 4, 1, 256);
  // Connections per engine process to a MySQL/MariaDB catalog: the queue holds up to 4 of them for its claims, a database move runs up to 128 sagas.
  const catalogPoolSize = integer('CATALOG_POOL_SIZE', 20, 2, 1000);
  const workerPollMs = integer('WORKER_POLL_MS', 1000, 10, 60_000);
  // Where a worker takes wake-ups from the processes that enqueue (UDP); `off`: none, it polls.
  const wakeText = value('WORKER_WAKE_ADDRESS') ?? '127.0.0.1';
  const workerWakeAddress = wakeText === 'off' ? null : wakeText;
  // The address is what other processes send to: not a wildcard.
  if (workerWakeAddress !== null && (isIP(workerWakeAddress) === 0 || workerWakeAddress === '0.0.0.0' || workerWakeAddress === '::')) fail('WORKER_WAKE_ADDRESS', `must be an IP address of this machine (not a wildcard) or "off" (got "${wakeText}")`);
  const allowLocalTransport = parseBoolean(value('ALLOW_LOCAL_TRANSPORT') ?? 'false', (p) => fail('ALLOW_LOCAL_TRANSPORT', p));
  const orders = {
    perMinutePerToken: integer('ORDERS_PER_MINUTE', 60, 0, 1_000_000),
    // 20 is also the order's own bound on its sites.
    maxSites: { free: integer('MAX_SITES_FREE', 3, 1, 20), paid: integer('MAX_SITES_PAID', 20, 1, 20) },
  };

  const logLevel = (value('LOG_LEVEL') ?? 'info').toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    fail('LOG_LEVEL', `must be one of ${LOG_LEVELS.join(', ')} (got "${logLevel}")`);
  }

  const smtpUrl = value('SMTP_URL') ?? null;
  if (smtpUrl !== null) {
    const parsed = tryUrl(smtpUrl);
    if (!parsed || !['smtp:', 'smtps:'].includes(parsed.protocol) || !parsed.hostname) {
      fail('SMTP_URL', 'must look like smtp://user:pass@host:port or smtps://host:465');
    }
  }

  // Where the engine mails operations (cloud leases ending); unset: such mail is only logged.
  const opsEmail = value('OPS_EMAIL') ?? null;
  if (opsEmail !== null && !/^[^\s@<>(),;:"\[\]\\]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(opsEmail)) {
    fail('OPS_EMAIL', `must be one e-mail address such as ops@example.net (got "${opsEmail}")`);
  }

  const dns = parseDns(value, fail, integer('DNS_TTL', 300, 30, 86_400));
  const acme = parseAcme(value, fail, cwd, integer('ACME_RENEW_DAYS', 21, 1, 60));
  const backupGraceDays = integer('BACKUP_GRACE_DAYS', 14, 0, 3650);
  const ipPoolLowWater = integer('IP_POOL_LOW_WATER', 5, 0, 100_000);
  const metricsToken = value('METRICS_TOKEN') ?? null;
  if (metricsToken !== null && !/^[\x21-\x7e]{16,256}$/.test(metricsToken)) fail('METRICS_TOKEN', 'must be 16 to 256 printable characters without spaces');

  // searchd's SphinxQL port on each search server (the engine renders its sphinx.conf).
  const searchPort = integer('SEARCH_PORT', 9306, 1, 65535);
  const ftp = parseFtp(value, fail, integer('FTP_PORT', 21, 1, 65535), catalog);

  const sshKeyPathText = value('SSH_KEY_PATH');
  let sshKeyPath: string | null = null;
  if (sshKeyPathText !== undefined) {
    sshKeyPath = resolve(cwd, sshKeyPathText);
    if (!existsSync(sshKeyPath)) fail('SSH_KEY_PATH', `no such file: ${sshKeyPath}`);
  }

  const embedded = catalog?.kind === 'sqlite';
  // The embedded default's one server is this machine, run by whoever started it.
  const webUser = value('WEB_USER') ?? (embedded ? `${userInfo().username}:${primaryGroup()}` : 'www-data');
  if (!/^[a-z_][a-z0-9_-]{0,31}(:[a-z_][a-z0-9_-]{0,31})?$/.test(webUser)) fail('WEB_USER', `must be a user or user:group name (got "${webUser}")`);
  const previousKeys = parsePreviousKeys(value('SECRETS_KEY_PREVIOUS'), (p) => fail('SECRETS_KEY_PREVIOUS', p));
  // Last, so a configuration that fails elsewhere leaves no generated key behind.
  const secrets = parseSecretsKey(value('SECRETS_KEY'), embedded, varDir, problems.length === 0, (p) =>
    fail('SECRETS_KEY', p),
  );

  if (problems.length > 0 || !catalog || !secrets) throw new ConfigError(problems);

  return {
    catalog: catalog.kind === 'mysql' ? { ...catalog, poolSize: catalogPoolSize } : catalog,
    migrationsRun,
    host,
    port,
    roles,
    secretsKey: new SecretsKeyring(secrets.key, previousKeys),
    secretsKeySource: secrets.source,
    smtpUrl,
    opsEmail,
    dns,
    acme,
    backupGraceDays,
    metricsToken,
    ipPoolLowWater,
    searchPort,
    ftp,
    mailDir: resolve(varDir, 'mail'),
    sshKeyPath,
    logLevel: logLevel as LogLevel,
    varDir,
    embedded,
    worker: { concurrency: workerConcurrency, pollMs: workerPollMs, wakeAddress: workerWakeAddress },
    webUser,
    allowLocalTransport,
    orders,
  };
}

const EMAIL = /^[^\s@<>(),;:"\[\]\\]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** PowerDNS's API: the URL and key together or neither (the key is never echoed). */
function parseDns(value: (key: ConfigKey) => string | undefined, fail: (key: ConfigKey, problem: string) => void, ttl: number): EngineConfig['dns'] {
  const apiUrl = value('DNS_API_URL');
  const apiKey = value('DNS_API_KEY');
  const serverId = value('DNS_SERVER_ID') ?? 'localhost';
  if (apiUrl === undefined) {
    if (apiKey !== undefined) fail('DNS_API_URL', 'must be set when DNS_API_KEY is (the PowerDNS API, such as http://127.0.0.1:8081)');
    return null;
  }
  const parsed = tryUrl(apiUrl);
  if (!parsed || !['http:', 'https:'].includes(parsed.protocol) || !parsed.hostname || parsed.username || parsed.search || parsed.hash) {
    fail('DNS_API_URL', `must be the PowerDNS API's base URL such as http://127.0.0.1:8081 (got "${apiUrl}")`);
  }
  if (apiKey === undefined) fail('DNS_API_KEY', 'must be set when DNS_API_URL is (the PowerDNS api-key)');
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(serverId)) fail('DNS_SERVER_ID', `must be a PowerDNS server id such as localhost (got "${serverId}")`);
  return { apiUrl: apiUrl.replace(/\/+$/, ''), apiKey: apiKey ?? '', serverId, ttl };
}

/** The ACME CA: a directory URL over https and an account e-mail, or neither. */
function parseAcme(value: (key: ConfigKey) => string | undefined, fail: (key: ConfigKey, problem: string) => void, cwd: string, renewDays: number): EngineConfig['acme'] {
  const directoryUrl = value('ACME_DIRECTORY_URL');
  const email = value('ACME_EMAIL');
  const caFileText = value('ACME_CA_FILE');
  if (directoryUrl === undefined) {
    if (email !== undefined || caFileText !== undefined || value('ACME_PREFLIGHT_RESOLVER') !== undefined) fail('ACME_DIRECTORY_URL', 'must be set when ACME_EMAIL, ACME_CA_FILE or ACME_PREFLIGHT_RESOLVER is');
    return null;
  }
  const parsed = tryUrl(directoryUrl);
  if (!parsed || parsed.protocol !== 'https:' || !parsed.hostname || parsed.username) {
    fail('ACME_DIRECTORY_URL', `must be the CA's https directory URL such as https://acme-v02.api.letsencrypt.org/directory (got "${directoryUrl}")`);
  }
  if (email === undefined || !EMAIL.test(email)) fail('ACME_EMAIL', `must be the ACME account's e-mail address (got "${email ?? ''}")`);
  let caFile: string | null = null;
  if (caFileText !== undefined) {
    caFile = resolve(cwd, caFileText);
    if (!existsSync(caFile)) fail('ACME_CA_FILE', `no such file: ${caFile}`);
  }
  // The DNS server the pre-flight resolves sites' names with (ip:port), the one the CA uses (a test CA's); unset: the system resolver.
  const resolverText = value('ACME_PREFLIGHT_RESOLVER');
  let preflightResolver: string | null = null;
  if (resolverText !== undefined) {
    const m = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(resolverText);
    if (!m || m[1]!.split('.').some((o) => Number(o) > 255) || Number(m[2]) < 1 || Number(m[2]) > 65535) {
      fail('ACME_PREFLIGHT_RESOLVER', `must be a DNS server's IPv4 address and port such as 127.0.0.1:53 (got "${resolverText}")`);
    } else preflightResolver = resolverText;
  }
  return { directoryUrl, email: email ?? '', caFile, renewDays, preflightResolver };
}

function parseCatalogUrl(url: string, cwd: string, fail: (p: string) => void): CatalogConfig | null {
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (path === '' || path.includes('\0')) {
      fail('sqlite URL needs a file path, e.g. sqlite:./var/engine.sqlite');
      return null;
    }
    if (path === ':memory:') return { kind: 'sqlite', path };
    return { kind: 'sqlite', path: isAbsolute(path) ? path : resolve(cwd, path) };
  }
  const parsed = tryUrl(url);
  if (!parsed || !['mysql:', 'mariadb:'].includes(parsed.protocol)) {
    fail('must be mysql://user:pass@host:port/database or sqlite:<path>');
    return null;
  }
  const database = decodeURIComponent(parsed.pathname.replace(/^\//, ''));
  const bad: string[] = [];
  if (!parsed.hostname) bad.push('a host');
  if (!parsed.username) bad.push('a user');
  if (!/^[A-Za-z0-9_]{1,64}$/.test(database)) bad.push('a database name of letters, digits and _');
  const port = parsed.port === '' ? 3306 : Number(parsed.port);
  if (bad.length > 0) {
    fail(`MySQL URL needs ${bad.join(', ')} (mysql://user:pass@host:port/database)`);
    return null;
  }
  return {
    kind: 'mysql',
    host: parsed.hostname.replace(/^\[(.*)\]$/, '$1'),
    port,
    user: decodeURIComponent(parsed.username),
    password: decodeURIComponent(parsed.password),
    database,
  };
}

function parseBoolean(text: string, fail: (p: string) => void): boolean {
  const t = text.toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(t)) return true;
  if (['0', 'false', 'no', 'off'].includes(t)) return false;
  fail(`must be true or false (got "${text}")`);
  return false;
}

function parseRoles(text: string, fail: (p: string) => void): EngineRole[] {
  const items = text
    .split(',')
    .map((r) => r.trim().toLowerCase())
    .filter((r) => r !== '');
  const unknown = items.filter((r) => !(ENGINE_ROLES as readonly string[]).includes(r));
  if (unknown.length > 0) fail(`unknown role(s) ${unknown.join(', ')}; roles are ${ENGINE_ROLES.join(', ')}`);
  if (items.length === 0) fail(`needs at least one of ${ENGINE_ROLES.join(', ')}`);
  return ENGINE_ROLES.filter((r) => items.includes(r));
}

/** 32 bytes, given as 64 hex digits or base64. */
export function decodeSecretsKey(text: string): Buffer | null {
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, 'hex');
  if (/^[A-Za-z0-9+/_-]{43}=?$/.test(text)) {
    const key = Buffer.from(text.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (key.length === 32) return key;
  }
  return null;
}

function parseSecretsKey(
  text: string | undefined,
  embedded: boolean,
  varDir: string,
  mayGenerate: boolean,
  fail: (p: string) => void,
): { key: Buffer; source: EngineConfig['secretsKeySource'] } | null {
  const hint = 'generate one with: openssl rand -hex 32';
  if (text !== undefined) {
    const key = decodeSecretsKey(text);
    if (!key) fail(`must be 32 bytes as 64 hex digits or base64; ${hint}`);
    return key ? { key, source: 'env' } : null;
  }
  if (!embedded) {
    fail(`is required with a MySQL catalog (every engine instance must share the same key); ${hint}`);
    return null;
  }
  // Embedded default: the key lives next to the SQLite catalog it protects,
  // created once and reused, so encrypted passwords stay readable across restarts.
  const file = resolve(varDir, 'secrets.key');
  if (existsSync(file)) {
    // Whoever put it there, only the engine's user reads it.
    const mode = statSync(file).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      try {
        chmodSync(file, 0o600);
      } catch (error) {
        fail(`${file} is readable by others (mode ${mode.toString(8)}) and could not be made 0600: ${(error as Error).message}`);
        return null;
      }
    }
    const key = decodeSecretsKey(readFileSync(file, 'utf8').trim());
    if (!key) fail(`${file} exists but does not hold a 32-byte hex key; fix or set SECRETS_KEY`);
    return key ? { key, source: 'file' } : null;
  }
  if (!mayGenerate) return null;
  const key = randomBytes(32);
  mkdirSync(varDir, { recursive: true });
  writeFileSync(file, key.toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
  chmodSync(file, 0o600);
  return { key, source: 'generated' };
}

/**
 * SECRETS_KEY_PREVIOUS: the keys a rotation moves away from, comma-separated,
 * each in SECRETS_KEY's formats. They only decrypt; a problem names the
 * entry's position, never its value.
 */
function parsePreviousKeys(text: string | undefined, fail: (p: string) => void): Buffer[] {
  if (text === undefined) return [];
  const keys: Buffer[] = [];
  text.split(',').forEach((entry, i) => {
    const key = decodeSecretsKey(entry.trim());
    if (key) keys.push(key);
    else fail(`entry ${i + 1} is not a 32-byte key as 64 hex digits or base64 (comma-separated, like SECRETS_KEY)`);
  });
  return keys;
}

function tryUrl(text: string): URL | null {
  try {
    return new URL(text);
  } catch {
    return null;
  }
}

/** The name of this process's primary group (`id -gn`). */
function primaryGroup(): string {
  try {
    return execFileSync('id', ['-gn'], { encoding: 'utf8' }).trim();
  } catch {
    return userInfo().username;
  }
}

/** ProFTPD's addresses (FTP_PASSIVE_PORTS `low-high`, FTP_ADDRESS an IPv4 address, FTP_CATALOG_HOST `host[:port]`). */
function parseFtp(value: (key: ConfigKey) => string | undefined, fail: (key: ConfigKey, problem: string) => void, port: number, catalog: CatalogConfig | null | undefined): EngineConfig['ftp'] {
  const range = value('FTP_PASSIVE_PORTS') ?? '49152-49407';
  const m = /^(\d{4,5})-(\d{4,5})$/.exec(range);
  const passivePorts: [number, number] = m ? [Number(m[1]), Number(m[2])] : [49152, 49407];
  if (!m || passivePorts[0] < 1024 || passivePorts[1] > 65535 || passivePorts[0] >= passivePorts[1]) fail('FTP_PASSIVE_PORTS', `must be a port range low-high (low below high: ProFTPD refuses one port) within 1024-65535 (got "${range}")`);
  const address = value('FTP_ADDRESS') ?? null;
  if (address !== null && !/^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/.test(address)) fail('FTP_ADDRESS', `must be an IPv4 address (got "${address}")`);
  const hostText = value('FTP_CATALOG_HOST');
  let catalogHost: EngineConfig['ftp']['catalogHost'] = catalog?.kind === 'mysql' ? { host: catalog.host, port: catalog.port } : null;
  if (hostText !== undefined) {
    const h = /^([A-Za-z0-9.-]{1,253})(?::(\d{1,5}))?$/.exec(hostText);
    if (!h || Number(h[2] ?? 3306) > 65535) fail('FTP_CATALOG_HOST', `must be host or host:port (got "${hostText}")`);
    else catalogHost = { host: h[1]!, port: Number(h[2] ?? 3306) };
  }
  const enabledText = value('FTP_ENABLED') ?? (catalog?.kind === 'mysql' ? 'true' : 'false');
  const enabled = parseBoolean(enabledText, (p) => fail('FTP_ENABLED', p));
  if (enabled && catalog && catalog.kind !== 'mysql') fail('FTP_ENABLED', 'needs a MySQL/MariaDB catalog (ProFTPD reads the accounts from it)');
  return { enabled: enabled && catalog?.kind === 'mysql', port, passivePorts, address, catalogHost };
}
