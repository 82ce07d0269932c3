import { Column, Entity, Index } from 'typeorm';
import { CatalogEntity, wordList } from './base.entity.js';

/** `search`: a database server that also runs Sphinx (searchd) for the installs whose databases it holds. */
export const SERVER_ROLES = ['dispatcher', 'handler', 'cloud', 'database', 'search'] as const;
export type ServerRole = (typeof SERVER_ROLES)[number];
export const SERVER_STATES = ['active', 'draining', 'down'] as const;
export type ServerState = (typeof SERVER_STATES)[number];
export const SERVER_TRANSPORTS = ['ssh', 'local'] as const;
export type ServerTransport = (typeof SERVER_TRANSPORTS)[number];

/** A machine of the hosting company (the seed's handlers + servers tables). */
@Entity('servers')
export class Server extends CatalogEntity {
  @Index('uq_servers_hostname', { unique: true })
  @Column({ type: 'varchar', length: 253 })
  hostname: string;

  @Column({ type: 'varchar', length: 45, nullable: true })
  privateIp: string | null;

  @Column({ type: 'varchar', length: 64, transformer: wordList })
  roles: ServerRole[];

  /** How the engine reaches it: `ssh`, or `local` for the single-machine default. */
  @Column({ type: 'varchar', length: 8, default: 'ssh' })
  transport: ServerTransport;

  @Column({ type: 'varchar', length: 253, nullable: true })
  sshHost: string | null;

  @Column({ type: 'int', nullable: true })
  sshPort: number | null;

  @Column({ type: 'varchar', length: 32, nullable: true })
  sshUser: string | null;

  /** Name or path of the private key to use: never the key itself. */
  @Column({ type: 'varchar', length: 255, nullable: true })
  sshKeyRef: string | null;

  /** Pinned host key fingerprint (`SHA256:...`); a mismatch is a hard error. */
  @Column({ type: 'varchar', length: 255, nullable: true })
  sshHostKey: string | null;

  @Column({ type: 'varchar', length: 512 })
  homeRoot: string;

  @Column({ type: 'varchar', length: 512 })
  sharedCodeRoot: string;

  @Column({ type: 'varchar', length: 512 })
  nginxConfDir: string;

  @Column({ type: 'varchar', length: 512 })
  cronDir: string;

  @Column({ type: 'varchar', length: 512 })
  certsRoot: string;

  /**
   * Where the engine keeps the server's per-install php-fpm pools
   * (`generations/<g>/`, `current`, `last-good`, `run/` for unix sockets);
   * the server's php-fpm.conf includes `<dir>/current/*.conf`. Null: the
   * server's PHP is not managed by the engine (one shared pool on port 9000).
   */
  @Column({ type: 'varchar', length: 512, nullable: true })
  phpFpmPoolDir: string | null;

  /** The pid file of the running php-fpm master (reloaded with SIGUSR2). Null: /run/php/php-fpm.pid. */
  @Column({ type: 'varchar', length: 512, nullable: true })
  phpFpmPidFile: string | null;

  /** Cloud servers: when the lease ends (drained then unless extended); null for no lease. */
  @Column({ type: 'datetime', nullable: true })
  leaseExpiresAt: Date | null;

  /** When operations were reminded that the lease ends (null: not yet for this expiry). */
  @Column({ type: 'datetime', nullable: true })
  leaseRemindedAt: Date | null;

  /**
   * Dispatchers: the pid file of the running nginx (whose http block
   * includes `<nginxConfDir>/current/shops.conf`): the engine reloads it
   * with SIGHUP and checks that new workers started. Null: /run/nginx.pid.
   */
  @Column({ type: 'varchar', length: 512, nullable: true })
  nginxPidFile: string | null;

  /** Dispatchers: the ports nginx serves shops on (null: 80 and 443; the embedded default's private nginx uses high ports). */
  @Column({ type: 'int', nullable: true })
  httpPort: number | null;

  @Column({ type: 'int', nullable: true })
  httpsPort: number | null;

  @Column({ type: 'varchar', length: 16, default: 'active' })
  state: ServerState;

  /** Most installs this server should host; null means no set limit. */
  @Column({ type: 'int', nullable: true })
  capacity: number | null;

  /**
   * Database servers: a MySQL option file on the server itself that the
   * `mariadb` client reads for the admin connection (host, port, user,
   * password, socket). A path, never the credentials: they stay on the
   * server. Null: the client's defaults (root over the local socket).
   */
  @Column({ type: 'varchar', length: 512, nullable: true })
  dbOptionsFile: string | null;
}
