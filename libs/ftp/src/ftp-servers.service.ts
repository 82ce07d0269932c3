import { posix } from 'node:path';
import { Inject, Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { Server } from '@app/catalog';
import { registerSecrets } from '@app/common';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { ServerAccess } from '@app/hosts';
import { ftpReader, readerHosts } from './ftp-reader.js';
import { proftpdConfPath, proftpdLayoutOf, proftpdPidPath, renderProftpdConf } from './proftpd-conf.js';

type Log = (line: string) => void;

/** What one run did on one dispatcher. */
export interface FtpServerRun {
  server: string;
  written: boolean;
  /** `reloaded` (SIGHUP), `not running` (no pid file or no such process), `unchanged`. */
  proftpd: 'reloaded' | 'not running' | 'unchanged';
}

/**
 * The FTP service: ProFTPD on every dispatcher (where the installs' homes,
 * and so their FTP trees and bind mounts, are), authenticating from the
 * catalog. Each run renders each dispatcher's config
 * (`<home root>/.ftp/proftpd.conf`); a changed one is written beside it,
 * checked with `proftpd -t`, swapped in, and a running ProFTPD (its pid
 * file) reloaded with SIGHUP. Accounts need no run: mod_sql reads the
 * rows at each login. The catalog's read-only account is made (or its
 * password set again) once per engine process and whenever it changes.
 */
@Injectable()
export class FtpServers {
  private readerReady = '';

  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly access: ServerAccess,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
  ) {}

  async apply(options: { log?: Log } = {}): Promise<FtpServerRun[]> {
    const log = options.log ?? (() => undefined);
    const { catalog, ftp } = this.config;
    if (catalog.kind !== 'mysql' || !ftp.catalogHost) {
      log('the catalog is SQLite: ProFTPD reads accounts from MySQL only, so no FTP service is configured');
      return [];
    }
    const reader = ftpReader(catalog.database, this.config.secretsKey.current);
    registerSecrets(reader.password);
    const servers = (await this.dataSource.getRepository(Server).find({ order: { id: 'ASC' } })).filter((s) => s.roles.includes('dispatcher') && s.state !== 'down');
    if (servers.length === 0) return [];
    await this.ensureReader(catalog.database, reader, readerHosts(ftp.catalogHost.host, servers));
    const runs: FtpServerRun[] = [];
    const failures: string[] = [];
    for (const server of servers) {
      try {
        const conf = renderProftpdConf(proftpdLayoutOf(server.homeRoot), {
          serverId: server.id,
          port: ftp.port,
          passivePorts: ftp.passivePorts,
          address: ftp.address,
          db: { host: ftp.catalogHost.host, port: ftp.catalogHost.port, database: catalog.database, user: reader.user, password: reader.password },
        });
        const run = await this.applyServer(server, conf);
        runs.push(run);
        if (run.written || run.proftpd === 'not running') log(`${server.hostname}: config ${run.written ? 'written' : 'unchanged'}; ProFTPD ${run.proftpd}`);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        log(`${server.hostname}: ${message}`);
        failures.push(`${server.hostname}: ${message}`);
      }
    }
    if (failures.length > 0) throw new Error(`FTP config failed on ${failures.join('; ')}`);
    return runs;
  }

  /** Writes `conf` on the server if it differs (checked by `proftpd -t` first: a config ProFTPD refuses never replaces the one it runs), then reloads. */
  async applyServer(server: Server, conf: string): Promise<FtpServerRun> {
    const exec = this.access.executorFor(server);
    const layout = proftpdLayoutOf(server.homeRoot);
    const path = proftpdConfPath(layout);
    await exec.mkdirs(server, [layout.dir, posix.join(layout.dir, 'run')], { mode: 0o755 });
    await exec.mkdirs(server, [posix.join(layout.dir, 'log')], { mode: 0o750 });
    const old = (await exec.exists(server, path)) ? (await exec.readFile(server, path)).toString() : '';
    const running = await this.runningPid(server);
    if (old === conf) return { server: server.hostname, written: false, proftpd: running ? 'unchanged' : 'not running' };
    // It holds the reader's password: root's only (ProFTPD reads it as root before it drops privileges).
    const candidate = `${path}.new`;
    await exec.writeFile(server, candidate, conf, { mode: 0o600 });
    const check = await exec.run(server, ['proftpd', '-t', '-c', candidate], { timeoutMs: 30_000 });
    if (check.exitCode === 127) throw new Error('proftpd is not installed (Debian packages proftpd-core, proftpd-mod-mysql)');
    if (check.exitCode !== 0) {
      await exec.remove(server, candidate);
      throw new Error(`proftpd -t refused the new config (the running one is kept): ${`${check.stderr}\n${check.stdout}`.trim().split('\n').slice(-3).join(' / ')}`);
    }
    await exec.writeFile(server, path, conf, { mode: 0o600 });
    await exec.remove(server, candidate);
    if (!running) return { server: server.hostname, written: true, proftpd: 'not running' };
    await exec.mustRun(server, ['kill', '-HUP', String(running)]);
    return { server: server.hostname, written: true, proftpd: 'reloaded' };
  }

  /** The pid in the pid file when that process is alive, else null. */
  private async runningPid(server: Server): Promise<number | null> {
    const exec = this.access.executorFor(server);
    const pidPath = proftpdPidPath(proftpdLayoutOf(server.homeRoot));
    if (!(await exec.exists(server, pidPath))) return null;
    const pid = (await exec.readFile(server, pidPath)).toString().trim();
    if (!/^[1-9]\d{0,9}$/.test(pid)) return null;
    return (await exec.run(server, ['kill', '-0', pid])).exitCode === 0 ? Number(pid) : null;
  }

  /**
   * The read-only account, from where the dispatchers connect (see
   * readerHosts): SELECT on the columns mod_sql reads and nothing else.
   * Needs an engine catalog user with CREATE USER and GRANT OPTION.
   */
  private async ensureReader(database: string, reader: { user: string; password: string }, hosts: string[]): Promise<void> {
    const key = `${reader.user} ${reader.password} ${hosts.join(',')}`;
    if (this.readerReady === key) return;
    if (!/^[A-Za-z0-9_]+$/.test(database)) throw new Error(`catalog database name ${database} cannot be granted safely`);
    try {
      for (const host of hosts) {
        const account = `'${reader.user}'@'${host}'`;
        await this.dataSource.query(`CREATE USER IF NOT EXISTS ${account} IDENTIFIED BY '${reader.password}'`);
        await this.dataSource.query(`ALTER USER ${account} IDENTIFIED BY '${reader.password}'`);
        await this.dataSource.query(`GRANT SELECT (userid, passwd, uid, gid, homedir, shell, enabled, install_id) ON \`${database}\`.\`ftp_accounts\` TO ${account}`);
        await this.dataSource.query(`GRANT SELECT (id, master_server_id) ON \`${database}\`.\`installs\` TO ${account}`);
      }
    } catch (error) {
      throw new Error(`the FTP reader account ${reader.user} could not be made (the engine's catalog user needs CREATE USER and GRANT OPTION): ${error instanceof Error ? error.message : String(error)}`);
    }
    this.readerReady = key;
  }
}

