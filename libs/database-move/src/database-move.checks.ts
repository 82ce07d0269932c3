import { Inject, Injectable } from '@nestjs/common';
import { Install, Server } from '@app/catalog';
import { redactSecrets, registerSecrets } from '@app/common';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { TenantDatabases, type TenantLogin } from '@app/databases';
import { decryptSecret } from '@app/installs';
import { clientHosts, InstallHomes, mapLimited } from './install-homes.js';

/** Database servers asked at once: each check is a client process on the target server. */
const CHECKS_AT_ONCE = 6;

const message = (e: unknown) => redactSecrets(e instanceof Error ? e.message : String(e)).split('\n')[0]!.slice(0, 300);

/**
 * The preconditions of a database move, checked before anything changes:
 * the target answers, and for every install its tenant database is there,
 * its account exists for every host its shop connects from with the
 * install's password, and that login can use the database (what a replica
 * or a dump and restore with the accounts gives). Each problem is one line
 * naming the install.
 */
@Injectable()
export class DatabaseMoveChecks {
  constructor(
    private readonly tenants: TenantDatabases,
    private readonly homes: InstallHomes,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
  ) {}

  async problems(installs: readonly Install[], to: Server): Promise<string[]> {
    try {
      await this.tenants.connection(to);
      // One admin query: the server answers (a down server, a wrong option file).
      await this.tenants.databaseExists(to, 'mysql');
    } catch (e) {
      return [`${to.hostname} does not answer: ${message(e)}`];
    }
    const homes = await this.homes.of(installs);
    const found = await mapLimited(installs, CHECKS_AT_ONCE, (install) => this.installProblems(install, homes.get(install.id) ?? [], to));
    return found.flat();
  }

  /** What keeps one install from using `to` (empty: nothing). */
  async installProblems(install: Install, servers: readonly Server[], to: Server): Promise<string[]> {
    const who = `install ${install.id} (${install.fsName})`;
    try {
      if (!(await this.tenants.databaseExists(to, install.dbName))) return [`${who}: database ${install.dbName} is missing on ${to.hostname}`];
      const login = this.login(install);
      const hosts = await this.tenants.accountsLacking(to, login, await this.tenants.accountHosts(to, clientHosts(servers)));
      if (hosts.length > 0) return [`${who}: user ${install.dbUser} is missing on ${to.hostname} (or has another password) for ${hosts.join(', ')}`];
      await this.tenants.runStatements(to, install.dbName, login, 'database-move-check', [{ text: 'SELECT 1', line: 1 }]);
      return [];
    } catch (e) {
      return [`${who}: ${install.dbUser} cannot use ${install.dbName} on ${to.hostname}: ${message(e)}`];
    }
  }

  private login(install: Install): TenantLogin {
    const password = decryptSecret(this.config.secretsKey, install.dbPasswordEnc);
    registerSecrets(password);
    return { user: install.dbUser, password };
  }
}
