import { posix } from 'node:path';
import { Inject, Injectable } from '@nestjs/common';
import { DataSource, In } from 'typeorm';
import { Install, InstallServer, Server } from '@app/catalog';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { TenantDatabases, type TenantLogin } from '@app/databases';
import { PathExistsError, ServerAccess } from '@app/hosts';
import { checkoutOn, cronFileOn, groupOn, decryptSecret, HOME_MARKER, homeMarker, homeOn, InstallBuildSteps, InstallUsers, type BuildContext } from '@app/installs';
import type { StepIO } from '@app/saga';
import { phpUserOf } from '@app/webserver';
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
    private readonly users: InstallUsers,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
  ) {}

  async loadContext(installId: number, serverId: number, jobId: number | null): Promise<HandlerContext> {
    const build = await this.builds.loadContext(installId, jobId);
    const server = await this.dataSource.getRepository(Server).findOneByOrFail({ id: serverId });
    const row = await this.dataSource.getRepository(InstallServer).findOneBy({ installId, serverId });
    return { build, install: build.install, server, row, managed: this.traffic.managed(server) };
  }

  /** The install's system user and group on a managed handler (the build's `php-user`): an account of that name the install did not make is a conflict, never adopted. */
  async ensureUser({ install, server, managed }: HandlerContext, io: StepIO): Promise<void> {
    if (!managed) return io.log(`${server.hostname}: PHP not managed by the engine (shared pool): no user of its own`);
    const outcome = await this.users.ensure(server, install);
    io.log(`user ${phpUserOf(install)} on ${server.hostname}${outcome === 'ours' ? ' (made by an earlier run)' : ''}`);
  }

  /** Removes the install's user (and its group) only if it is the install's. */
  async removeUser({ install, server, managed }: HandlerContext, io: StepIO): Promise<void> {
    if (!managed) return;
    const outcome = await this.users.remove(server, install);
    io.log(outcome === 'removed' ? `removed user ${phpUserOf(install)} from ${server.hostname}` : outcome === 'absent' ? `no user ${phpUserOf(install)} on ${server.hostname}` : `user ${phpUserOf(install)} on ${server.hostname} is not this install's: left as it is`);
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
    // The install's release (a rollout syncs later ones to every server of the group, this one included).
    await this.access.executorFor(server).mkdir(server, posix.dirname(checkoutOn(server, group, build.revision)));
    await this.access.sync(groupMaster, server, checkoutOn(groupMaster, group, build.revision));
    io.log(`synced release ${build.revision.slice(0, 12)} of code group ${group.name} from ${groupMaster.hostname} to ${server.hostname}`);
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
    const layout = (s: Server) => posix.relative(posix.join(s.homeRoot, install.fsName, 'x'), groupOn(s, group));
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

  /** The install's crons on the handler (the seed's "also adds crons"), as the build writes them. */
  async writeCrons({ build, server }: HandlerContext, io: StepIO): Promise<void> {
    await this.builds.writeCrons(build, server, io);
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
