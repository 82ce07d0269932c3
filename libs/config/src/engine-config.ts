import type { SecretsKeyring } from './secrets-keyring.js';

/** The engine roles one process can take; several instances share the catalog. */
export const ENGINE_ROLES = ['api', 'worker', 'cron'] as const;
export type EngineRole = (typeof ENGINE_ROLES)[number];

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export type CatalogConfig =
  | { kind: 'sqlite'; path: string }
  | {
      kind: 'mysql';
      host: string;
      port: number;
      user: string;
      password: string;
      database: string;
      /** Connections per engine process (CATALOG_POOL_SIZE, default 20). */
      poolSize?: number;
    };

/**
 * The one configuration object, built once at boot from the environment.
 * Nothing reads `process.env` after boot: everything else receives this.
 */
export interface EngineConfig {
  catalog: CatalogConfig;
  /** Run pending catalog migrations when the engine starts. */
  migrationsRun: boolean;
  host: string;
  port: number;
  roles: readonly EngineRole[];
  /**
   * The 32-byte keys that encrypt tenant database passwords and install
   * secrets at rest: SECRETS_KEY (every new ciphertext) and
   * SECRETS_KEY_PREVIOUS (still decrypted during a rotation).
   */
  secretsKey: SecretsKeyring;
  /** Where the key came from, for the boot banner (never the key itself). */
  secretsKeySource: 'env' | 'generated' | 'file';
  /** SMTP URL; when unset, mail is written as .eml files into `mailDir`. */
  smtpUrl: string | null;
  /** Operations' address (OPS_EMAIL): cloud lease reminders; null: such mail is only logged. */
  opsEmail: string | null;
  mailDir: string;
  sshKeyPath: string | null;
  logLevel: LogLevel;
  /** Local state: the embedded SQLite catalog, generated key, mail, local hosts. */
  varDir: string;
  /**
   * True on the single-machine default (SQLite catalog): the engine seeds a
   * local server whose roots live under `<varDir>/hosts/local` and prints a
   * fresh admin token at start.
   */
  embedded: boolean;
  /** Queue worker of this instance (used when ENGINE_ROLES has `worker`). */
  worker: { concurrency: number; pollMs: number; wakeAddress: string | null };
  /** Owner of an install's writable directories and reader of its config (`user` or `user:group`), as php-fpm runs. */
  webUser: string;
  /**
   * Servers with `transport: local` (commands run on the engine machine as its
   * user) may be added outside the embedded default, which always may.
   */
  allowLocalTransport: boolean;
  /**
   * PowerDNS's HTTP API (DNS_API_URL, DNS_API_KEY, DNS_SERVER_ID, DNS_TTL):
   * a zone that exists there is managed by the engine (sites' A/AAAA
   * records); null: no zone is, and operations list the records the
   * customer must set.
   */
  dns: { apiUrl: string; apiKey: string; serverId: string; ttl: number } | null;
  /**
   * The ACME CA that issues sites' certificates (ACME_DIRECTORY_URL,
   * ACME_EMAIL, ACME_CA_FILE: an extra CA for the directory's own TLS, as
   * pebble's; ACME_RENEW_DAYS before expiry the renewal task renews); null:
   * ACME is off and only uploaded certificates are installed.
   * ACME_PREFLIGHT_RESOLVER (`ip:port`): the DNS server the pre-flight
   * resolves sites' names with (the one the CA uses); null: the system's.
   */
  acme: { directoryUrl: string; email: string; caFile: string | null; renewDays: number; preflightResolver: string | null } | null;
  /**
   * Bearer token a Prometheus scraper outside the loopback presents on
   * `GET /metrics` (METRICS_TOKEN); null: /metrics answers the loopback only.
   */
  metricsToken: string | null;
  /** Free dedicated or floating IPs of a server below which operations are warned (IP_POOL_LOW_WATER); 0: never. */
  ipPoolLowWater: number;
  /**
   * The SphinxQL port searchd listens on on every search server
   * (SEARCH_PORT, default 9306), on 127.0.0.1 and the server's private IP:
   * written into the sphinx.conf the SearchIndexConfig task renders.
   */
  searchPort: number;
  /**
   * FTP (FTP_ENABLED, default on with a MySQL catalog, off with SQLite):
   * the BindMounts and FtpConfig tasks run only when on. ProFTPD on the
   * dispatchers (the FtpConfig task renders its config):
   * the control port (FTP_PORT, default 21) and passive range
   * (FTP_PASSIVE_PORTS, default 49152-49407) on FTP_ADDRESS (default: every
   * address); the catalog database as the dispatchers reach it
   * (FTP_CATALOG_HOST `host[:port]`, default: the catalog URL's).
   */
  ftp: { enabled: boolean; port: number; passivePorts: [number, number]; address: string | null; catalogHost: { host: string; port: number } | null };
  /** Days a removed install's backup is kept (BACKUP_GRACE_DAYS) before the purge task deletes it. */
  backupGraceDays: number;
  /** The order hook's limits. */
  orders: {
    /** Orders one token may place per minute, shared by every API instance on the catalog; 0: no limit. */
    perMinutePerToken: number;
    /** Most sites (hostnames) one order may name, by license. */
    maxSites: { free: number; paid: number };
  };
}

export function hasRole(config: Pick<EngineConfig, 'roles'>, role: EngineRole): boolean {
  return config.roles.includes(role);
}
