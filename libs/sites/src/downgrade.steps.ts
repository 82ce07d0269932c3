import { posix } from 'node:path';
import { Injectable } from '@nestjs/common';
import { DataSource, In } from 'typeorm';
import { FtpAccount, Install, InstallServer, InstallSiteIp, Server, StartupMount } from '@app/catalog';
import { ChangeCodebaseSteps, type ChangeCodebaseContext } from '@app/codebase-update';
import { ServerAccess } from '@app/hosts';
import { cronFileOn, HOME_MARKER, homeMarker, homeOn, InstallUsers } from '@app/installs';
import { QueueService } from '@app/queue';
import type { StepIO } from '@app/saga';
import { awaitPools, NginxRebuilds, PoolRebuilds } from '@app/webserver';
import { SiteCatalog } from './site-catalog.js';
import { permanent, SiteEffects } from './site-effects.js';
import type { DowngradePayload } from './site-payloads.js';
import type { OperationContext } from './site-saga.js';

type Context = OperationContext<DowngradePayload>;

/**
 * The downgrade's own effects (DowngradeJob lists them as steps): the
 * install served by its master alone and back, its license, its FTP
 * access and mounts, and the removal of its copies on the other servers.
 * Each is idempotent and reads the catalog as it is.
 */
@Injectable()
export class DowngradeSteps {
  constructor(
    private readonly dataSource: DataSource,
    private readonly catalog: SiteCatalog,
    private readonly effects: SiteEffects,
    private readonly codebase: ChangeCodebaseSteps,
    private readonly access: ServerAccess,
    private readonly users: InstallUsers,
    private readonly rebuilds: NginxRebuilds,
    private readonly pools: PoolRebuilds,
    private readonly queue: QueueService,
  ) {}

  install(p: DowngradePayload): Promise<Install> {
    return this.dataSource.getRepository(Install).findOneByOrFail({ id: p.installId });
  }

  async formerServers(p: DowngradePayload): Promise<Server[]> {
    const ids = p.replicas.map((r) => r.serverId);
    return ids.length ? this.dataSource.getRepository(Server).find({ where: { id: In(ids) }, order: { id: 'ASC' } }) : [];
  }

  /** The codebase change's context, on the master alone (the other servers' copies are on their way out). */
  async codebaseContext({ payload: p, jobId }: Context): Promise<ChangeCodebaseContext> {
    const context = await this.codebase.loadContext({ installId: p.installId, fromGroupId: p.fromGroupId, toGroupId: p.toGroupId }, jobId);
    const install = await this.install(p);
    return { ...context, servers: context.servers.filter((s) => s.id === install.masterServerId) };
  }

  /** Step `serving`: one transaction; the rebuilds it asks for follow the catalog. */
  async masterOnly(p: DowngradePayload, io: StepIO): Promise<void> {
    const install = await this.install(p);
    if (install.status !== 'live') throw permanent(`install ${install.id} is ${install.status}: only a live install is downgraded`);
    const former = p.replicas.map((r) => r.serverId);
    const dispatchers = await this.rebuilds.dispatchersOf(p.installId);
    await this.dataSource.transaction(async (m) => {
      if (former.length > 0) await m.delete(InstallServer, { installId: p.installId, serverId: In(former) });
      for (const row of p.releasedIps) await m.delete(InstallSiteIp, { installSiteId: row.installSiteId, serverIpId: row.serverIpId });
      for (const server of dispatchers) await this.rebuilds.request(server.id, m);
      await this.pools.request(former, m);
    });
    this.queue.nudge();
    io.log(`served by its master alone: ${former.length} other server(s) left, ${p.releasedIps.length} IP(s) released`);
  }

  /** The other servers and IPs back as they were (an exclusive IP taken meanwhile: another free one), then vhosts and DNS. */
  async servingBack({ payload: p, jobId }: Context, io: StepIO): Promise<void> {
    await this.dataSource.transaction(async (m) => {
      for (const row of p.replicas) {
        if (await m.findOneBy(InstallServer, { installId: p.installId, serverId: row.serverId })) continue;
        await m.insert(InstallServer, { installId: p.installId, ...row });
      }
      for (const row of p.releasedIps) {
        if (await m.findOneBy(InstallSiteIp, { installSiteId: row.installSiteId, serverIpId: row.serverIpId })) continue;
        let ipId = row.serverIpId;
        if (row.exclusive && (await this.catalog.heldElsewhere(m, ipId, row.installSiteId))) {
          ipId = (await this.catalog.freeDedicatedIp(m, await m.findOneByOrFail(Server, { id: row.serverId }), `site ${row.installSiteId}`)).id;
          io.log(`IP ${row.serverIpId} was taken meanwhile: ${ipId} instead`);
        }
        await this.catalog.attachIps(m, row.installSiteId, [{ ...row, serverIpId: ipId }]);
      }
      await this.pools.request(p.replicas.map((r) => r.serverId), m);
      for (const server of await this.rebuilds.dispatchersOf(p.installId, m)) await this.rebuilds.request(server.id, m);
    });
    this.queue.nudge();
    io.log(`served again by ${p.replicas.length + 1} server(s)`);
    const context = await this.effects.context(p.installId, jobId);
    // Their PHP pools first (dropped when they left), then their vhosts pointing at them.
    await awaitPools(this.pools, context.install, (await this.formerServers(p)).filter((s) => s.state !== 'down' && this.users.managed(s)), io.log);
    await this.effects.awaitVhosts(context, io);
    await this.effects.publish(p.installId, io);
  }

  /** The install's license; the config files (they render it) follow on the master once the group is settled (undo: here). */
  async license({ payload: p, jobId }: Context, license: 'free' | 'paid', io: StepIO): Promise<void> {
    await this.dataSource.getRepository(Install).update({ id: p.installId }, { license });
    io.log(`license ${license}`);
    if (license === 'paid') {
      const context = await this.effects.context(p.installId, jobId);
      await this.effects.renderConfig(context, io);
    }
  }

  /** Bind mounts unmounted and their rows removed; the FTP account disabled (its name kept). */
  async ftpOff(p: DowngradePayload, io: StepIO): Promise<void> {
    for (const mount of p.mounts) {
      const server = await this.dataSource.getRepository(Server).findOneByOrFail({ id: mount.serverId });
      const executor = this.access.executorFor(server);
      if ((await executor.run(server, ['mountpoint', '-q', mount.target])).exitCode === 0) {
        await executor.mustRun(server, ['umount', mount.target]);
        io.log(`unmounted ${mount.target} on ${server.hostname}`);
      }
    }
    await this.dataSource.transaction(async (m) => {
      await m.delete(StartupMount, { installId: p.installId });
      await m.update(FtpAccount, { installId: p.installId }, { enabled: false });
    });
    io.log(`${p.mounts.length} bind mount(s) removed; ${p.ftpEnabled === null ? 'no FTP account' : 'FTP account disabled'}`);
  }

  async ftpBack(p: DowngradePayload, io: StepIO): Promise<void> {
    await this.dataSource.transaction(async (m) => {
      for (const mount of p.mounts) {
        if (!(await m.findOneBy(StartupMount, { serverId: mount.serverId, target: mount.target }))) await m.insert(StartupMount, { installId: p.installId, ...mount });
      }
      if (p.ftpEnabled !== null) await m.update(FtpAccount, { installId: p.installId }, { enabled: p.ftpEnabled });
    });
    io.log(`${p.mounts.length} bind mount(s) back (the mounts task applies them); FTP as it was`);
  }

  /** Past the pivot: on every former server, what this install made there (its home only with its marker), its cron file and its PHP account. */
  async removeCopies(p: DowngradePayload, io: StepIO): Promise<void> {
    const install = await this.install(p);
    const master = await this.dataSource.getRepository(Server).findOneByOrFail({ id: install.masterServerId! });
    for (const server of await this.formerServers(p)) {
      if (server.state === 'down') throw new Error(`${server.hostname} is down: the copy of ${install.fsName} there is removed once it is back`);
      const executor = this.access.executorFor(server);
      const home = homeOn(server, install);
      const marker = posix.join(home, HOME_MARKER);
      const ours = (await executor.exists(server, marker)) && (await executor.readFile(server, marker)).toString('utf8') === homeMarker(install);
      if (ours) {
        await executor.remove(server, home);
        io.log(`removed the copy ${home} on ${server.hostname}`);
      } else {
        io.log(`${home} on ${server.hostname} was not made by this install (or is gone): left as it is`);
      }
      await executor.remove(server, cronFileOn(server, install));
      if (this.users.managed(server)) {
        // Two inventory rows on one machine (one /etc/passwd): the account is still the master's.
        if (await this.sameMachine(server, master)) {
          io.log(`${server.hostname} is the same machine as the master ${master.hostname} (one machine-id): the account of ${install.fsName} stays`);
          continue;
        }
        const outcome = await this.users.remove(server, install);
        if (outcome === 'not-ours') io.log(`left the account of ${install.fsName} on ${server.hostname}: not created by this install`);
      }
    }
  }

  /** Whether two servers are one machine (their /etc/machine-id alike); false when either cannot tell. */
  private async sameMachine(a: Server, b: Server): Promise<boolean> {
    const id = async (s: Server) => {
      const r = await this.access.executorFor(s).run(s, ['cat', '/etc/machine-id']);
      return r.exitCode === 0 ? r.stdout.trim() : null;
    };
    const [x, y] = await Promise.all([id(a), id(b)]);
    return x !== null && x !== '' && x === y;
  }
}
