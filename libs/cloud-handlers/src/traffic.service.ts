import { posix } from 'node:path';
import { Inject, Injectable } from '@nestjs/common';
import { DataSource, In } from 'typeorm';
import { HandlerConfig, InstallServer, Server, type Install } from '@app/catalog';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { ServerAccess } from '@app/hosts';
import { JobDeferredError } from '@app/queue';
import { awaitPools, managesPhp, NginxRebuilds, poolFileOf, PoolRebuilds } from '@app/webserver';

/** How long a step waits within one run before it defers its job (and frees the worker slot), as the build's webserver step. */
export const WAIT_IN_RUN_MS = 5_000;
/** When a deferred wait looks again. */
export const RECHECK_MS = 1_000;

/** One dispatcher's nginx and one install: the vhost whose upstream must match the catalog. */
export interface VhostPair {
  dispatcher: Server;
  installId: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Waiting for the web and PHP sides to carry what the catalog says now: the
 * dispatchers' nginx (an install's vhost names its upstream by a digest of
 * the backend set, so the vhost being live means the weights, `down` and
 * `backup` marks are), and a handler's pools. Requests are coalesced
 * rebuilds, made once per run; a wait longer than WAIT_IN_RUN_MS defers the
 * job instead of holding a worker.
 */
@Injectable()
export class TrafficService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly access: ServerAccess,
    private readonly rebuilds: NginxRebuilds,
    private readonly pools: PoolRebuilds,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
  ) {}

  managed(server: Server): boolean {
    return managesPhp(server, this.config);
  }

  /** Every vhost of these installs on the dispatchers serving them that are not down (a down one is rebuilt when it is back). */
  async vhostsOf(installIds: readonly number[]): Promise<VhostPair[]> {
    const pairs: VhostPair[] = [];
    for (const installId of [...new Set(installIds)].sort((a, b) => a - b)) {
      for (const dispatcher of await this.rebuilds.dispatchersOf(installId)) {
        if (dispatcher.state !== 'down') pairs.push({ dispatcher, installId });
      }
    }
    return pairs;
  }

  /**
   * Waits until every vhost is live as the catalog has it now; asks for the
   * rebuild of those that are not (once, when `request`). A quarantined
   * vhost or a rebuild that gave up fails (permanent: the operator looks).
   */
  async awaitVhosts(pairs: readonly VhostPair[], log: (line: string) => void, options: { request: boolean }): Promise<void> {
    const deadline = Date.now() + WAIT_IN_RUN_MS;
    let waiting = [...pairs];
    for (let round = 0; ; round++) {
      const still: VhostPair[] = [];
      for (const pair of waiting) {
        const vhost = await this.rebuilds.vhostState(pair.dispatcher, pair.installId);
        if (vhost.state === 'quarantined' || vhost.state === 'failed') {
          throw Object.assign(new Error(`install ${pair.installId} on ${pair.dispatcher.hostname}: ${vhost.reason}`), { permanent: vhost.state === 'quarantined' });
        }
        if (vhost.state === 'pending') still.push(pair);
      }
      if (round === 0 && options.request) {
        for (const id of [...new Set(still.map((p) => p.dispatcher.id))].sort((a, b) => a - b)) await this.rebuilds.request(id);
      }
      waiting = still;
      if (waiting.length === 0) {
        log(`nginx live on ${[...new Set(pairs.map((p) => p.dispatcher.hostname))].join(', ') || 'no dispatcher'}`);
        return;
      }
      if (Date.now() > deadline) throw new JobDeferredError(`waiting for the nginx rebuild of ${[...new Set(waiting.map((p) => p.dispatcher.hostname))].join(', ')}`, RECHECK_MS);
      await sleep(100);
    }
  }

  /** Waits until the handler's live pools carry the install's pool as rendered now (a managed handler only). */
  async awaitPool(install: Install, server: Server, log: (line: string) => void): Promise<void> {
    await awaitPools(this.pools, install, [server], log);
  }

  /**
   * Waits until the handler's live pool generation no longer holds the
   * install's pool file (its row is `removing` or gone, so the next rebuild
   * drops it); asks for that rebuild once per run.
   */
  async awaitPoolGone(install: Install, server: Server, log: (line: string) => void): Promise<void> {
    const deadline = Date.now() + WAIT_IN_RUN_MS;
    for (let round = 0; ; round++) {
      if (await this.poolGone(install, server)) {
        log(`no pool of ${install.fsName} on ${server.hostname} any more`);
        return;
      }
      if (round === 0) await this.pools.request([server.id]);
      if (Date.now() > deadline) throw new JobDeferredError(`waiting for the php-fpm pool rebuild of ${server.hostname} (dropping ${install.fsName})`, RECHECK_MS);
      await sleep(100);
    }
  }

  private async poolGone(install: Install, server: Server): Promise<boolean> {
    const row = await this.dataSource.getRepository(HandlerConfig).findOneBy({ serverId: server.id });
    if (!row?.liveGeneration) return true;
    const file = posix.join(server.phpFpmPoolDir!, 'generations', row.liveGeneration, poolFileOf(install));
    return (await this.access.executorFor(server).run(server, ['test', '-e', file])).exitCode !== 0;
  }

  /** Servers whose rows of these installs are active, by install: who would still serve each one. */
  async activeHandlersOf(installIds: readonly number[], except: number): Promise<Map<number, number>> {
    const counts = new Map<number, number>(installIds.map((id) => [id, 0]));
    if (installIds.length === 0) return counts;
    const rows = await this.dataSource
      .getRepository(InstallServer)
      .createQueryBuilder('isv')
      .innerJoin(Server, 's', 's.id = isv.serverId')
      .select(['isv.installId AS installId', 'COUNT(*) AS n'])
      .where('isv.installId IN (:...ids)', { ids: [...installIds] })
      .andWhere('isv.serverId <> :except', { except })
      .andWhere("isv.state = 'active'")
      .andWhere("s.state = 'active'")
      .groupBy('isv.installId')
      .getRawMany<{ installId: number; n: number }>();
    for (const r of rows) counts.set(Number(r.installId), Number(r.n));
    return counts;
  }

  /** The installs a server handles (its rows), in id order. */
  async rowsOn(serverId: number, states: InstallServer['state'][] = ['adding', 'active', 'removing']): Promise<InstallServer[]> {
    return this.dataSource.getRepository(InstallServer).find({ where: { serverId, state: In(states) }, order: { installId: 'ASC' } });
  }
}
