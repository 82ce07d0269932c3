import { posix } from 'node:path';
import { Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { Install, Server, SharedCodeGroup } from '@app/catalog';
import { CODE_LINK, CodeReleases, releaseDirOn } from '@app/codebases';
import { ServerAccess } from '@app/hosts';
import { homeOn, InstallBuildSteps, InstallUsers, type BuildContext } from '@app/installs';
import type { StepIO } from '@app/saga';
import { awaitPools, NginxRebuilds, PoolRebuilds } from '@app/webserver';
import { HomeServers } from './home-servers.js';

export interface ChangeCodebasePayload {
  installId: number;
  fromGroupId: number;
  toGroupId: number;
}

/**
 * Everything a step of the codebase change needs, rebuilt from the catalog
 * and the payload at every run: the install as seen from the group it
 * leaves (`from`) and from the group it joins (`to`), whichever of the two
 * the catalog says it is on right now.
 */
export interface ChangeCodebaseContext {
  from: BuildContext;
  to: BuildContext;
  /** The servers that hold the install's home (master, replicas, active cloud handlers), down ones included. */
  servers: Server[];
}

/** A failure trying again cannot help (a group filled up, a release missing): the saga undoes at once. */
const permanent = (message: string) => Object.assign(new Error(message), { permanent: true });

/**
 * The effects of moving an install to another code group of the same
 * revision (issue 16, the seed's "Change codebase"), shared by the saga's
 * steps and their compensations. Each is idempotent: the catalog tells
 * whether the slot moved, and re-pointing a link or rendering a config file
 * again changes nothing.
 */
@Injectable()
export class ChangeCodebaseSteps {
  constructor(
    private readonly dataSource: DataSource,
    private readonly access: ServerAccess,
    private readonly builds: InstallBuildSteps,
    private readonly releases: CodeReleases,
    private readonly users: InstallUsers,
    private readonly pools: PoolRebuilds,
    private readonly rebuilds: NginxRebuilds,
    private readonly homes: HomeServers,
  ) {}

  async loadContext({ installId, fromGroupId, toGroupId }: ChangeCodebasePayload, jobId: number | null): Promise<ChangeCodebaseContext> {
    const base = await this.builds.loadContext(installId, jobId);
    const groups = this.dataSource.getRepository(SharedCodeGroup);
    const [fromGroup, toGroup] = await Promise.all([groups.findOneByOrFail({ id: fromGroupId }), groups.findOneByOrFail({ id: toGroupId })]);
    // The release stays the same; each group has it (the request checked, the `release` step checks again).
    const revision = base.install.codeRevision ?? fromGroup.revision ?? base.revision;
    const view = async (group: SharedCodeGroup): Promise<BuildContext> => ({ ...base, install: { ...base.install } as Install, group, revision, manifest: await this.releases.recordedManifest(group, revision) });
    const [from, to] = await Promise.all([view(fromGroup), view(toGroup)]);
    return { from, to, servers: await this.homes.of(base.install) };
  }

  /** Step `release`: every server of the home is up and holds the target group's release (checked again: time passed since the request). */
  async checkRelease({ to, servers }: ChangeCodebaseContext, io: StepIO): Promise<void> {
    const down = servers.filter((s) => s.state === 'down');
    if (down.length > 0) throw permanent(`${down.map((s) => s.hostname).join(', ')} (holding the home of ${to.install.fsName}) is down: its link could not be switched`);
    const missing = await this.homes.missingRelease(servers, to.group, to.revision);
    if (missing.length > 0) throw permanent(`release ${to.revision.slice(0, 12)} of code group ${to.group.name} is not on ${missing.join(', ')}`);
    io.log(`release ${to.revision.slice(0, 12)} of ${to.group.name} on ${servers.map((s) => s.hostname).join(', ')}`);
  }

  /**
   * The install's files onto `context.group` on every server of its home:
   * what that group's manifest adds to the tree (links go through `.code`,
   * so the existing ones stay right), config files rendered with it, then
   * `.code` renamed onto its release (atomic per server).
   */
  async pointTo(context: BuildContext, servers: readonly Server[], io: StepIO): Promise<void> {
    const { install, group, revision } = context;
    for (const server of servers) {
      await this.builds.applyTree(context, context.manifest, { copies: 'missing', server });
      await this.builds.renderConfig(context, server, io);
      const home = homeOn(server, install);
      await this.access.executorFor(server).symlinkMany(server, [{ path: posix.join(home, CODE_LINK), target: posix.relative(home, releaseDirOn(server, group, revision)) }]);
    }
    io.log(`${CODE_LINK} of ${install.fsName} -> ${group.name}/releases/${revision.slice(0, 12)} on ${servers.map((s) => s.hostname).join(', ')}`);
  }

  /**
   * The slot, in one transaction: taken in `to` (only while it is ready,
   * unlocked and has room, as an order takes one), given back in `from`,
   * the install's row on `to`, and the rebuilds of its PHP pools and vhosts
   * asked for (they follow the catalog). Done already when the row is on
   * `to`.
   */
  async moveSlot({ from, to, servers }: ChangeCodebaseContext, io: StepIO): Promise<void> {
    const moved = await this.dataSource.transaction(async (m) => {
      const install = await this.lockInstall(m, to.install.id);
      if (install.sharedCodeGroupId === to.group.id) return false;
      if (install.sharedCodeGroupId !== from.group.id) throw permanent(`install ${install.id} is on code group ${install.sharedCodeGroupId}, not ${from.group.name}: changed by someone else`);
      const took = await m
        .createQueryBuilder()
        .update(SharedCodeGroup)
        .set({ installCount: () => 'install_count + 1' })
        .where('id = :id AND install_count < install_limit AND state = :ready AND locked = :unlocked', { id: to.group.id, ready: 'ready', unlocked: false })
        .execute();
      if ((took.affected ?? 0) === 0) {
        const now = await m.findOneByOrFail(SharedCodeGroup, { id: to.group.id });
        throw permanent(`code group ${now.name} took no install: ${now.state !== 'ready' ? now.state : now.locked ? 'locked' : `full (${now.installCount} of ${now.installLimit})`}`);
      }
      await this.giveBack(m, from.group.id);
      await m.update(Install, { id: install.id }, { sharedCodeGroupId: to.group.id });
      await this.requestRebuilds(m, to.install.id, servers);
      return true;
    });
    io.log(moved ? `slot moved from ${from.group.name} to ${to.group.name}` : `on ${to.group.name} already`);
  }

  /**
   * The compensation of the switch (links and slot together, in the order
   * that keeps PHP's cached paths right): links and config files back onto
   * `from` on every server, the slot back (even if `from` filled up
   * meanwhile: the install is there again, and the count says so), then
   * its pools and vhosts rebuilt from the catalog as it is again.
   */
  async switchBack(context: ChangeCodebaseContext, io: StepIO): Promise<void> {
    const { from, to, servers } = context;
    await this.pointTo(from, servers.filter((s) => s.state !== 'down'), io);
    const moved = await this.dataSource.transaction(async (m) => {
      const install = await this.lockInstall(m, to.install.id);
      if (install.sharedCodeGroupId !== to.group.id) return false;
      await m.createQueryBuilder().update(SharedCodeGroup).set({ installCount: () => 'install_count + 1' }).where('id = :id', { id: from.group.id }).execute();
      await this.giveBack(m, to.group.id);
      await m.update(Install, { id: install.id }, { sharedCodeGroupId: from.group.id });
      await this.requestRebuilds(m, from.install.id, servers);
      return true;
    });
    if (moved) {
      const back = await this.dataSource.getRepository(SharedCodeGroup).findOneByOrFail({ id: from.group.id });
      io.log(`slot back in ${back.name} (${back.installCount} of ${back.installLimit}${back.installCount > back.installLimit ? ': over its limit, an order took the freed slot meanwhile' : ''})`);
    }
    await this.awaitPools(from, servers, io);
    await this.builds.webServer().execute(from, io);
  }

  /** Waits until php-fpm runs the install's pool as the catalog has it (its open_basedir names the group's directory) on every managed handler of its home that is up. */
  async awaitPools(context: BuildContext, servers: readonly Server[], io: StepIO): Promise<void> {
    const handlers = servers.filter((s) => s.state !== 'down' && this.users.managed(s));
    if (handlers.length === 0) return io.log('no handler of the home runs its own pool (PHP not managed by the engine)');
    await awaitPools(this.pools, context.install, handlers, io.log);
  }

  /** In the slot's transaction: no group moves without its pools and vhosts queued to follow. */
  private async requestRebuilds(m: EntityManager, installId: number, servers: readonly Server[]): Promise<void> {
    await this.pools.request(servers.filter((s) => s.state !== 'down' && this.users.managed(s)).map((s) => s.id), m);
    await this.rebuilds.requestForInstall(installId, m);
  }

  private async giveBack(m: EntityManager, groupId: number): Promise<void> {
    await m.createQueryBuilder().update(SharedCodeGroup).set({ installCount: () => 'install_count - 1' }).where('id = :id AND install_count > 0', { id: groupId }).execute();
  }

  private async lockInstall(m: EntityManager, installId: number): Promise<Install> {
    const sqlite = this.dataSource.options.type === 'better-sqlite3';
    return m.findOneOrFail(Install, { where: { id: installId }, ...(sqlite ? {} : { lock: { mode: 'pessimistic_write' as const } }) });
  }
}
