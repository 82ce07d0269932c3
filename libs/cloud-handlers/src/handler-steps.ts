import { posix } from 'node:path';
import { Inject, Injectable } from '@nestjs/common';
import { DataSource, In } from 'typeorm';
import { Install, InstallServer, Server } from '@app/catalog';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { TenantDatabases, type TenantLogin } from '@app/databases';
import { commandLine, PathExistsError, ServerAccess } from '@app/hosts';
import { checkoutOn, cronFileOn, decryptSecret, HOME_MARKER, homeMarker, homeOn, InstallBuildSteps, type BuildContext } from '@app/installs';
import type { StepIO } from '@app/saga';
import { installUserComment, phpUserOf } from '@app/webserver';
import { TrafficService } from './traffic.service.js';

/** Everything a step of the add/remove-handler sagas needs, rebuilt from the catalog at every run. */
export interface HandlerContext {
  build: BuildContext;
  install: Install;
  /** The handler the install is added to or removed from. */
  server: Server;
  /** Its install_servers row; null once gone (a removal that finished, an addition undone). */
  row: InstallServer | null;
  /** Whether the engine manages the handler's PHP (its own user and pool per install). */
  managed: boolean;
}

/** A permanent failure: trying again cannot help (a conflict, a layout that cannot work). */
const permanent = (message: string) => Object.assign(new Error(message), { permanent: true });

/**
 * The effects of putting an install on a handler and taking it off again,
 * shared by the add-handler saga (execute, compensation) and the
 * remove-handler saga. Each is idempotent and removes only what this
 * install made (its user by comment, its home by marker).
 */
@Injectable()
export class HandlerSteps {
  constructor(
    private readonly dataSource: DataSource,
    private readonly access: ServerAccess,
    private readonly builds: InstallBuildSteps,
    private readonly tenants: TenantDatabases,
    private readonly traffic: TrafficService,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
  ) {}

  async loadContext(installId: number, serverId: number, jobId: number | null): Promise<HandlerContext> {
    const build = await this.builds.loadContext(installId, jobId);
    const server = await this.dataSource.getRepository(Server).findOneByOrFail({ id: serverId });
    const row = await this.dataSource.getRepository(InstallServer).findOneBy({ installId, serverId });
    return { build, install: build.install, server, row, managed: this.traffic.managed(server) };
  }

  /**
   * The install's system user and group on a managed handler (the build's
   * `php-user`): created with the install's comment; one of that name with
   * another comment is a conflict, never adopted.
   */
  async ensureUser({ install, server, managed }: HandlerContext, io: StepIO): Promise<void> {
    if (!managed) return io.log(`${server.hostname}: PHP not managed by the engine (shared pool): no user of its own`);
    const user = phpUserOf(install);
    const existing = await this.userComment(server, user);
    if (existing === installUserComment(install)) return io.log(`user ${user} on ${server.hostname} (made by an earlier run)`);
    if (existing !== null) throw permanent(`a user ${user} exists on ${server.hostname} and is not this install's (comment ${JSON.stringify(existing)}): left as it is`);
    await this.access
      .executorFor(server)
      .mustRun(server, ['useradd', '--system', '--user-group', '--no-create-home', '--home-dir', homeOn(server, install), '--shell', '/usr/sbin/nologin', '--comment', installUserComment(install), user]);
    io.log(`user ${user} on ${server.hostname}`);
  }

  /** Removes the install's user (and its group) only if its comment names this install. */
  async removeUser({ install, server, managed }: HandlerContext, io: StepIO): Promise<void> {
    if (!managed) return;
    const user = phpUserOf(install);
    const existing = await this.userComment(server, user);
    if (existing === null) return io.log(`no user ${user} on ${server.hostname}`);
    if (existing !== installUserComment(install)) return io.log(`user ${user} on ${server.hostname} is not this install's: left as it is`);
    const executor = this.access.executorFor(server);
    await executor.mustRun(server, ['userdel', user]);
    // userdel drops the user's own group on Debian (USERGROUPS_ENAB); elsewhere it may stay behind.
    if ((await executor.run(server, ['getent', 'group', user])).exitCode === 0) await executor.mustRun(server, ['groupdel', user]);
    io.log(`removed user ${user} from ${server.hostname}`);
  }

  /** The GECOS comment of a user on the server, or null when there is no such user. */
  private async userComment(server: Server, user: string): Promise<string | null> {
    const result = await this.access.executorFor(server).run(server, ['getent', 'passwd', user]);
    if (result.exitCode === 2) return null;
    if (result.exitCode !== 0) throw new Error(`getent passwd ${user} failed on ${server.hostname} (exit ${result.exitCode}): ${result.stderr.trim()}`);
    return result.stdout.split('\n')[0]!.split(':')[4] ?? '';
  }

  /** The install's database account for the handler's private IP (PHP there connects from it). */
  async grantDatabase({ build, install, server }: HandlerContext, io: StepIO): Promise<void> {
    const host = server.privateIp ?? '127.0.0.1';
    await this.tenants.createUser(build.dbServer, this.login(install), install.dbName, [host]);
    io.log(`database user ${install.dbUser}@${host} on ${build.dbServer.hostname}`);
  }

  /** Drops that account unless another server of the install (or the database server itself) connects from the same address. */
  async revokeDatabase({ build, install, server }: HandlerContext, io: StepIO): Promise<void> {
    // The embedded default's SQLite databases have one account per install, whatever the host: never dropped here.
    if (this.tenants.sqlite(build.dbServer)) return;
    const host = server.privateIp ?? '127.0.0.1';
    const others = await this.dataSource.getRepository(InstallServer).find({ where: { installId: install.id } });
    const otherServers = others.length ? await this.dataSource.getRepository(Server).find({ where: { id: In(others.map((r) => r.serverId).filter((id) => id !== server.id)) } }) : [];
    const shared = new Set(await this.tenants.accountHosts(build.dbServer, otherServers.map((s) => s.privateIp ?? '127.0.0.1')));
    if (shared.has(host)) return io.log(`database user ${install.dbUser}@${host} kept: other servers of the install connect from ${host}`);
    const left = await this.tenants.dropUser(build.dbServer, this.login(install), install.dbName, [host]);
    io.log(left.length ? `left ${left.join(', ')}: not made by this install` : `dropped database user ${install.dbUser}@${host}`);
  }

  /** The group's shared checkout on the handler, synced from the group's master (the seed's "syncs the shared code"). */
  async syncSharedCode({ build, server }: HandlerContext, io: StepIO): Promise<void> {
    const { group } = build;
    const groupMaster = await this.dataSource.getRepository(Server).findOneByOrFail({ id: group.masterServerId });
    if (groupMaster.id === server.id) return io.log(`${server.hostname} is the master of ${group.name}`);
    await this.access.sync(groupMaster, server, checkoutOn(groupMaster, group));
    io.log(`synced code group ${group.name} from ${groupMaster.hostname} to ${server.hostname}`);
  }

  /**
   * The home from the install's master (rsync: links, owners and modes
   * kept), into a new marked home (never one this install did not make),
   * then its config files rendered with the handler's values.
   */
  async syncHome(context: HandlerContext, io: StepIO): Promise<void> {
    const { build, install, server } = context;
    const { master, group } = build;
    // Links are relative: they resolve on a server whose home and shared code roots sit alike.
    const layout = (s: Server) => posix.relative(posix.join(s.homeRoot, install.fsName, 'x'), checkoutOn(s, group));
    if (layout(server) !== layout(master)) throw permanent(`${server.hostname} places its home and shared code roots differently from ${master.hostname}: the install's links would not resolve there`);
    const home = homeOn(server, install);
    try {
      await this.access.executorFor(server).mkdirNew(server, home, { mode: 0o755, marker: { name: HOME_MARKER, content: homeMarker(install) } });
    } catch (error) {
      if (!(error instanceof PathExistsError)) throw error;
      if (!(await this.homeIsOurs(server, install))) throw permanent(`${home} already exists on ${server.hostname} and was not created by this install: it is left as it is`);
    }
    await this.access.sync(master, server, homeOn(master, install));
    await this.builds.renderConfig(build, server, io);
    io.log(`synced the home of ${install.fsName} from ${master.hostname} to ${server.hostname}`);
  }

  /** Removes the home only if this install made it (its marker). */
  async removeHome({ install, server }: HandlerContext, io: StepIO): Promise<void> {
    const home = homeOn(server, install);
    if (!(await this.homeIsOurs(server, install))) return io.log(`${home} on ${server.hostname} was not made by this install (or is gone): left as it is`);
    await this.access.executorFor(server).remove(server, home);
    io.log(`removed ${home} from ${server.hostname}`);
  }

  private async homeIsOurs(server: Server, install: Install): Promise<boolean> {
    const executor = this.access.executorFor(server);
    const marker = posix.join(homeOn(server, install), HOME_MARKER);
    if (!(await executor.exists(server, marker))) return false;
    return (await executor.readFile(server, marker)).toString('utf8') === homeMarker(install);
  }

  /** The install's crons on the handler (the seed's "also adds crons"), as the build writes them: run as the install's user where PHP is managed. */
  async writeCrons({ build, install, server, managed }: HandlerContext, io: StepIO): Promise<void> {
    const home = homeOn(server, install);
    const user = managed ? phpUserOf(install) : this.config.webUser.split(':')[0]!;
    const lines = [
      `# shop ${install.fsName} (install ${install.id}), written by the provisioning engine: do not edit`,
      'SHELL=/bin/sh',
      'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      ...(build.manifest.crons ?? []).map((c) => `${c.schedule} ${user} cd ${commandLine([home])} && ${commandLine(c.command)}`),
      '',
    ];
    await this.access.executorFor(server).writeFile(server, cronFileOn(server, install), lines.join('\n'), { mode: 0o644 });
    io.log(`crons on ${server.hostname}`);
  }

  async removeCrons({ install, server }: HandlerContext, io: StepIO): Promise<void> {
    await this.access.executorFor(server).remove(server, cronFileOn(server, install));
    io.log(`removed the crons from ${server.hostname}`);
  }

  /** Moves the row to a state (no-op once the row is gone). */
  async setRowState({ install, server }: HandlerContext, from: InstallServer['state'][], to: InstallServer['state']): Promise<void> {
    await this.dataSource.getRepository(InstallServer).update({ installId: install.id, serverId: server.id, state: In(from) }, { state: to });
  }

  private login(install: Install): TenantLogin {
    return { user: install.dbUser, password: decryptSecret(this.config.secretsKey, install.dbPasswordEnc) };
  }
}
