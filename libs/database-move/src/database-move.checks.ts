import { Inject, Injectable } from '@nestjs/common';
import { Install, Server } from '@app/catalog';
import { redactSecrets, registerSecrets } from '@app/common';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { TenantDatabases, type TenantLogin } from '@app/databases';
import { decryptSecret } from '@app/installs';
import { clientHosts, InstallHomes } from './install-homes.js';
import { LoginChecks } from './login-checks.js';

/** Installs per admin query (the statements carry a name, a password and hosts each). */
const CHECK_CHUNK = 200;

const message = (e: unknown) => redactSecrets(e instanceof Error ? e.message : String(e)).split('\n')[0]!.slice(0, 300);

/**
 * The preconditions of a database move, checked before anything changes:
 * the target answers, and for every install its tenant database is there
 * and its account exists, with the install's password, for every host its
 * shop connects from (what a replica, or a dump and restore with the
 * accounts, gives). A few admin queries for any number of installs; each
 * problem is one line naming the install. Each install's saga proves its
 * login again on the target (`loginProblem`) before it changes anything.
 */
@Injectable()
export class DatabaseMoveChecks {
  constructor(
    private readonly tenants: TenantDatabases,
    private readonly homes: InstallHomes,
    private readonly logins: LoginChecks,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
  ) {}

  async problems(installs: readonly Install[], to: Server): Promise<string[]> {
    try {
      await this.tenants.connection(to);
      // An admin query: the server answers (a down server, a wrong option file).
      await this.tenants.databasesPresent(to, ['mysql']);
    } catch (e) {
      return [`${to.hostname} does not answer: ${message(e)}`];
    }
    const homes = await this.homes.of(installs);
    const problems: string[] = [];
    for (let start = 0; start < installs.length; start += CHECK_CHUNK) {
      const chunk = installs.slice(start, start + CHECK_CHUNK);
      const present = await this.tenants.databasesPresent(to, chunk.map((i) => i.dbName));
      const withDatabase = chunk.filter((i) => present.has(i.dbName));
      const wanted = await Promise.all(withDatabase.map(async (i) => ({ login: this.login(i), hosts: await this.tenants.accountHosts(to, clientHosts(homes.get(i.id) ?? [])) })));
      const lacking = await this.tenants.accountsLacking(to, wanted);
      for (const install of chunk) {
        const who = `install ${install.id} (${install.fsName})`;
        if (!present.has(install.dbName)) {
          problems.push(`${who}: database ${install.dbName} is missing on ${to.hostname}`);
          continue;
        }
        const hosts = lacking[withDatabase.indexOf(install)]!;
        if (hosts.length > 0) problems.push(`${who}: user ${install.dbUser} is missing on ${to.hostname} (or has another password) for ${hosts.join(', ')}`);
      }
    }
    return problems;
  }

  /** Whether the install's own login uses its database on `to` (null: it does), as its shop will (checked with other installs' at once: LoginChecks). */
  async loginProblem(install: Install, to: Server): Promise<string | null> {
    try {
      await this.logins.check(to, install.dbName, this.login(install));
      return null;
    } catch (e) {
      return `install ${install.id} (${install.fsName}): ${install.dbUser} cannot use ${install.dbName} on ${to.hostname}: ${message(e)}`;
    }
  }

  private login(install: Install): TenantLogin {
    const password = decryptSecret(this.config.secretsKey, install.dbPasswordEnc);
    registerSecrets(password);
    return { user: install.dbUser, password };
  }
}
