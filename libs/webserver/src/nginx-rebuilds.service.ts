import { posix } from 'node:path';
import { Injectable } from '@nestjs/common';
import { DataSource, In, type EntityManager } from 'typeorm';
import { DispatcherConfig, InstallServer, Job, Server, WebQuarantine } from '@app/catalog';
import { defineJobKind, QueueService } from '@app/queue';
import { ServerAccess } from '@app/hosts';
import { DispatcherInputLoader } from './dispatcher-input.loader.js';
import { GENERATIONS_DIR } from './dispatcher-files.js';
import { installFiles, renderEach } from './render.js';

export interface NginxRebuildPayload {
  serverId: number;
}

/** One dispatcher's nginx rebuilt from the catalog (resource key `nginx:server:<id>`). */
export const NGINX_REBUILD = defineJobKind<NginxRebuildPayload>('nginx.rebuild', {
  maxAttempts: 5,
  backoff: { baseMs: 5_000, maxMs: 120_000 },
});

/** Rebuilds are claimed before other jobs (lower runs first; builds are 0). */
export const NGINX_REBUILD_PRIORITY = -10;

/**
 * One dispatcher's nginx put back on its last good generation: a job on the
 * rebuilds' resource key, so it never runs while a rebuild of that
 * dispatcher does. Not retried: the operator sees why and decides.
 */
export const NGINX_ROLLBACK = defineJobKind<NginxRebuildPayload>('nginx.rollback', {
  maxAttempts: 1,
  backoff: { baseMs: 5_000, maxMs: 5_000 },
});

export const nginxResourceKey = (serverId: number) => `nginx:server:${serverId}`;

/** A failed rebuild is requested again by the reconciler after this long (a dead host, a config no install explains). */
export const FAILED_REBUILD_RETRY_MS = 5 * 60_000;

export type VhostState =
  | { state: 'live' }
  | { state: 'pending' }
  | { state: 'quarantined'; reason: string }
  /** The dispatcher's last rebuild failed and none is queued or running (its job gave up): nothing will load the vhost. */
  | { state: 'failed'; reason: string }
  | { state: 'not-served' };

/**
 * Rebuild requests, coalesced per dispatcher: the first request while no
 * rebuild is queued enqueues one; the others only bump the wanted
 * generation and are served by that job (it reads the generation when it
 * starts). A burst of installs causes a handful of reloads, not one each.
 */
@Injectable()
export class NginxRebuilds {
  /** Waiters for the next change of a dispatcher's config row made by this process (an apply recorded, a rebuild failed). */
  private readonly waiters = new Set<() => void>();

  constructor(
    private readonly dataSource: DataSource,
    private readonly queue: QueueService,
    private readonly access: ServerAccess,
    private readonly loader: DispatcherInputLoader,
  ) {}

  /** Requests a rebuild of one dispatcher; in the caller's transaction when given one. */
  async request(serverId: number, manager?: EntityManager): Promise<{ jobId: number | null }> {
    // The row first, outside the caller's transaction: a racing first request then finds it instead of a snapshot without it.
    await this.configRow(serverId);
    const run = async (m: EntityManager) => {
      const claimed = await m
        .createQueryBuilder()
        .update(DispatcherConfig)
        .set({ wantedGeneration: () => 'wanted_generation + 1', pending: true })
        .where('server_id = :serverId AND pending = :no', { serverId, no: false })
        .execute();
      if ((claimed.affected ?? 0) === 0) {
        // A rebuild is queued and not started yet: it will include this request.
        await m.createQueryBuilder().update(DispatcherConfig).set({ wantedGeneration: () => 'wanted_generation + 1' }).where('server_id = :serverId', { serverId }).execute();
        return { jobId: null };
      }
      // Ahead of the builds: they wait for it (a burst of builds queued first would otherwise starve it).
      const { job } = await this.queue.enqueue(NGINX_REBUILD, { serverId }, { resourceKey: nginxResourceKey(serverId), manager: m, priority: NGINX_REBUILD_PRIORITY });
      return { jobId: job.id };
    };
    if (manager) return run(manager);
    const result = await this.dataSource.transaction(run);
    if (result.jobId !== null) this.queue.nudge();
    return result;
  }

  /** Queues the rollback of one dispatcher (ahead of its rebuilds); returns the job's id. */
  async requestRollback(serverId: number): Promise<number> {
    const { job } = await this.queue.enqueue(NGINX_ROLLBACK, { serverId }, { resourceKey: nginxResourceKey(serverId), priority: NGINX_REBUILD_PRIORITY - 1 });
    return job.id;
  }

  /** The dispatchers serving the install, in server order. */
  async dispatchersOf(installId: number, manager: EntityManager = this.dataSource.manager): Promise<Server[]> {
    const rows = await manager.find(InstallServer, { where: { installId } });
    const servers = rows.length ? await manager.find(Server, { where: { id: In(rows.map((r) => r.serverId)) } }) : [];
    return servers.filter((s) => s.roles.includes('dispatcher')).sort((a, b) => a.id - b.id);
  }

  /** Requests a rebuild of every dispatcher serving the install. */
  async requestForInstall(installId: number, manager?: EntityManager): Promise<void> {
    // In server order: two transactions asking for the same dispatchers lock their rows in the same order.
    for (const server of await this.dispatchersOf(installId, manager)) await this.request(server.id, manager);
  }

  /** Whether a rebuild (or rollback) of the dispatcher is queued or running. */
  async underWay(serverId: number): Promise<boolean> {
    return (await this.dataSource.getRepository(Job).count({ where: { resourceKey: nginxResourceKey(serverId), state: In(['ready', 'blocked', 'running']) } })) > 0;
  }

  /**
   * Dispatchers whose config is behind the catalog with no rebuild queued
   * (down when it was requested, a failed rebuild, a job an operator
   * cancelled) get one. Returns how many were requested.
   */
  async reconcile(now = Date.now()): Promise<number> {
    const rows = await this.dataSource
      .getRepository(DispatcherConfig)
      .createQueryBuilder('c')
      .innerJoin(Server, 's', 's.id = c.serverId')
      .where("s.state <> 'down'")
      .andWhere('(c.wantedGeneration > c.appliedGeneration OR c.pending = :yes)', { yes: true })
      .getMany();
    let requested = 0;
    for (const row of rows) {
      if (await this.underWay(row.serverId)) continue;
      if (row.pending) await this.dataSource.getRepository(DispatcherConfig).update({ id: row.id }, { pending: false });
      if (row.wantedGeneration <= row.appliedGeneration) continue;
      if (row.lastError !== null && now - row.updatedAt.getTime() < FAILED_REBUILD_RETRY_MS) continue;
      await this.request(row.serverId);
      requested++;
    }
    return requested;
  }

  /**
   * Whether the install's vhost as the catalog has it now is what the
   * dispatcher's nginx loaded (the file of the generation recorded live,
   * after its reload was verified).
   */
  async vhostState(server: Server, installId: number): Promise<VhostState> {
    const quarantine = await this.dataSource.getRepository(WebQuarantine).findOneBy({ serverId: server.id, installId });
    if (quarantine) return { state: 'quarantined', reason: quarantine.reason };
    const input = await this.loader.load(server, installId);
    const install = input.installs[0];
    if (!install) return { state: 'not-served' };
    const { files, refused } = renderEach(input);
    if (refused.length > 0) return { state: 'quarantined', reason: refused[0]!.error };
    const row = await this.dataSource.getRepository(DispatcherConfig).findOneBy({ serverId: server.id });
    if (row?.lastError) {
      // Cleared by the next successful apply; while a rebuild is still queued or retried, it may yet succeed.
      const open = await this.dataSource.getRepository(Job).count({ where: { resourceKey: nginxResourceKey(server.id), state: In(['ready', 'blocked', 'running']) } });
      return open > 0 ? { state: 'pending' } : { state: 'failed', reason: `the last nginx rebuild of ${server.hostname} failed: ${row.lastError}` };
    }
    if (!row?.liveGeneration) return { state: 'pending' };
    const name = installFiles(install.fsName).find((n) => files.has(n))!;
    const path = posix.join(server.nginxConfDir, GENERATIONS_DIR, row.liveGeneration, name);
    const result = await this.access.executorFor(server).run(server, ['cat', '--', path]);
    return result.exitCode === 0 && result.stdout === files.get(name) ? { state: 'live' } : { state: 'pending' };
  }

  /**
   * Resolves at the next change of a dispatcher's config row this process
   * records (an apply's live generation, a rebuild's failure), or after
   * `ms`: a step waiting for its vhost looks again at once when the rebuild
   * ran here, and at its next round when it ran elsewhere.
   */
  nextChange(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiters.add(done);
    });
  }

  /** Wakes every waiter of nextChange. */
  private changed(): void {
    for (const wake of [...this.waiters]) wake();
  }

  /** The dispatcher's pipeline row, made on first use. */
  async configRow(serverId: number, changes: Partial<DispatcherConfig> = {}, manager: EntityManager = this.dataSource.manager): Promise<DispatcherConfig> {
    const repo = manager.getRepository(DispatcherConfig);
    let row = await repo.findOneBy({ serverId });
    if (!row) {
      try {
        await repo.insert({ serverId });
      } catch (error) {
        // Another engine made it first; without its row, the insert's own failure is the answer.
        if (!(await repo.findOneBy({ serverId }))) throw error;
      }
      row = await repo.findOneByOrFail({ serverId });
    }
    if (Object.keys(changes).length > 0) {
      await repo.update({ id: row.id }, changes);
      Object.assign(row, changes);
      if ('liveGeneration' in changes || 'lastError' in changes) this.changed();
    }
    return row;
  }
}
