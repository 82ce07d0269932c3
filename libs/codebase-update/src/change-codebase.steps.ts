import { posix } from 'node:path';
import { Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { Install, Server, SharedCodeGroup } from '@app/catalog';
import { CODE_LINK, CodeReleases, releaseDirOn } from '@app/codebases';
import { ServerAccess } from '@app/hosts';
import { homeOn, InstallBuildSteps, InstallUsers, type BuildContext } from '@app/installs';
import type { StepIO } from '@app/saga';
import { JobDeferredError } from '@app/queue';
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

  /** Step `release`: the install still live, every server of its home up and holding the target group's release (checked again: time passed since the request). */
  async checkRelease({ to, servers }: ChangeCodebaseContext, io: StepIO): Promise<void> {
    if (to.install.status !== 'live') throw permanent(`install ${to.install.id} is ${to.install.status}: only a live install changes codebase`);
    const down = servers.filter((s) => s.state === 'down');
    if (down.length > 0) throw permanent(`${down.map((s) => s.hostname).join(', ')} (holding the home of ${to.install.fsName}) is down: its link could not be switched`);
    const missing = await this.homes.missingRelease(servers, to.group, to.revision);
    if (missing.length > 0) throw permanent(`release ${to.revision.slice(0, 12)} of code group ${to.group.name} is not on ${missing.join(', ')}`);
    io.log(`release ${to.revision.slice(0, 12)} of ${to.group.name} on ${servers.map((s) => s.hostname).join(', ')}`);
  }

  /**
   * What `context.group`'s manifest adds to the home's tree (its links go
   * through `.code`, so the existing ones stay right) and the config files
   * rendered with it, on every server of the home. `.code` is not touched:
   * both groups hold the same revision, so the files fit either release.
   */
  async prepareFiles(context: BuildContext, servers: readonly Server[], io: StepIO, options: { tree: boolean }): Promise<void> {
    const now = await this.dataSource.getRepository(Install).findOneByOrFail({ id: context.install.id });
    if (!options.tree && now.sharedCodeGroupId !== context.group.id) {
      io.log(`install ${now.id} is on code group ${now.sharedCodeGroupId}, not ${context.group.name}: its config files are left as they are`);
      return;
    }
    for (const server of servers.filter((s) => s.state !== 'down')) {
      if (options.tree) await this.builds.applyTree(context, context.manifest, { copies: 'missing', server });
      await this.builds.renderConfig(context, server, io);
    }
  }

  /**
   * `.code` renamed onto `context.group`'s release (atomic) on each server
   * of the home, each as soon as its php-fpm runs the install's pool as the
   * catalog has it (open_basedir naming that group's directory): PHP
   * refuses a script whose real path is outside it, so a link ahead of its
   * pool fails every request until the reload, and a pool ahead of its link
   * fails them until the rename. Servers in parallel: the errors last from
   * a pool's reload being recorded to its link's rename, not more.
   * Waiting longer than a run may defers the job; the links renamed so far
   * stay (renaming again changes nothing).
   */
  async followPools(context: BuildContext, servers: readonly Server[], io: StepIO): Promise<void> {
    const { install, group, revision } = context;
    const results = await Promise.allSettled(
      servers.filter((s) => s.state !== 'down').map(async (server) => {
        if (this.users.managed(server)) await awaitPools(this.pools, install, [server], io.log);
        const home = homeOn(server, install);
        await this.access.executorFor(server).symlinkMany(server, [{ path: posix.join(home, CODE_LINK), target: posix.relative(home, releaseDirOn(server, group, revision)) }]);
        io.log(`${CODE_LINK} of ${install.fsName} -> ${group.name}/releases/${revision.slice(0, 12)} on ${server.hostname}`);
      }),
    );
    const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as unknown);
    // A real failure before a wait: the saga gives up on that, not on a deferral.
    if (failures.length > 0) throw failures.find((e) => !(e instanceof JobDeferredError)) ?? failures[0];
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
   * The compensation of the slot, and of everything after it: the slot
   * back (even if `from` filled up meanwhile: the install is there again,
   * and the count says so) with its pools and vhosts queued, then each
   * server's `.code` back onto `from`'s release as soon as its pool is
   * (as forward), then the vhosts as the catalog has them again.
   */
  async slotBack(context: ChangeCodebaseContext, io: StepIO): Promise<void> {
    const { from, to, servers } = context;
    const outcome = await this.dataSource.transaction(async (m) => {
      const install = await this.lockInstall(m, to.install.id);
      if (install.sharedCodeGroupId === from.group.id) return 'never-moved';
      // Moved by someone else meanwhile (refused at the request, but a catalog can be edited by hand): its files are that change's to keep.
      if (install.sharedCodeGroupId !== to.group.id) return `on code group ${install.sharedCodeGroupId}`;
      await m.createQueryBuilder().update(SharedCodeGroup).set({ installCount: () => 'install_count + 1' }).where('id = :id', { id: from.group.id }).execute();
      await this.giveBack(m, to.group.id);
      await m.update(Install, { id: install.id }, { sharedCodeGroupId: from.group.id });
      await this.requestRebuilds(m, from.install.id, servers);
      return 'moved-back';
    });
    if (outcome !== 'moved-back' && outcome !== 'never-moved') {
      io.log(`install ${to.install.id} is ${outcome}, neither ${from.group.name} nor ${to.group.name}: its links and slot are left as they are`);
      return;
    }
    if (outcome === 'moved-back') {
      const back = await this.dataSource.getRepository(SharedCodeGroup).findOneByOrFail({ id: from.group.id });
      io.log(`slot back in ${back.name} (${back.installCount} of ${back.installLimit}${back.installCount > back.installLimit ? ': over its limit, an order took the freed slot meanwhile' : ''})`);
    }
    await this.followPools(from, servers, io);
    await this.builds.webServer().execute(from, io);
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
