import { Injectable, Logger } from '@nestjs/common';
import { DataSource, In } from 'typeorm';
import { DatabaseMove, DatabaseMoveItem, Install, Server } from '@app/catalog';
import { redactSecrets, withAbortSignal, withSecretScope } from '@app/common';
import { JobDeferredError, JobOutput, JobRepository, LeaseLostError, settleFailedRun, type JobContext } from '@app/queue';
import { DATABASE_MOVE_INSTALL, InstallDatabaseMoveJob, type MoveShared } from './install-database-move.job.js';
import { InstallHomes } from './install-homes.js';
import { MoveChildJobs, type HeldChild } from './move-child-jobs.repository.js';

/** Installs whose homes are looked up at once, ahead of their sagas. */
const HOMES_CHUNK = 500;

/**
 * Runs a move's pending installs' sagas in the parent job's process,
 * `move.concurrency` at once, each under its own child job held by the
 * parent's worker (MoveChildJobs): journaled, fenced and leased as if a
 * worker had claimed it, so a killed worker's children resume like any
 * child job. Compared with one queued job per install, no worker slot, claim
 * or queue wait per install, and the sagas' remote work is coalesced across
 * installs (LoginChecks, CacheClears). A child ends as a worker would end it: done, dead
 * (a compensated or permanent failure), or given back to the queue to retry.
 */
@Injectable()
export class MoveSagasRunner {
  private readonly logger = new Logger('MoveSagasRunner');

  constructor(
    private readonly dataSource: DataSource,
    private readonly children: MoveChildJobs,
    private readonly jobs: JobRepository,
    private readonly sagas: InstallDatabaseMoveJob,
    private readonly homes: InstallHomes,
  ) {}

  /** Until every item given ran (or was left to the queue), or the parent stops. */
  async run(move: DatabaseMove, items: readonly DatabaseMoveItem[], parent: JobContext): Promise<void> {
    if (items.length === 0) return;
    const owner = await this.children.holderOf(parent.jobId);
    if (!owner) return;
    const servers = this.dataSource.getRepository(Server);
    const [from, to] = await Promise.all([servers.findOneByOrFail({ id: move.fromServerId }), servers.findOneByOrFail({ id: move.toServerId })]);
    const leaseMs = DATABASE_MOVE_INSTALL.options.leaseMs;
    const held = new Map<number, { child: HeldChild; abort: AbortController }>();
    const renewals = setInterval(() => void this.renew(held, leaseMs), leaseMs / 3);
    try {
      for (let start = 0; start < items.length && !parent.signal.aborted; start += HOMES_CHUNK) {
        const chunk = items.slice(start, start + HOMES_CHUNK);
        const installs = await this.dataSource.getRepository(Install).find({ where: { id: In(chunk.map((i) => i.installId)) } });
        const shared: MoveShared = { move, from, to, homes: await this.homes.of(installs) };
        await this.runChunk(move, chunk, owner, leaseMs, held, shared, parent);
      }
    } finally {
      clearInterval(renewals);
    }
  }

  /**
   * The chunk's sagas, `move.concurrency` at once: their jobs taken a group
   * at a time (one transaction) when the lanes have none left to run. Jobs
   * taken but not started when the parent stops go back to the queue.
   */
  private async runChunk(move: DatabaseMove, chunk: readonly DatabaseMoveItem[], owner: string, leaseMs: number, held: Map<number, { child: HeldChild; abort: AbortController }>, shared: MoveShared, parent: JobContext): Promise<void> {
    const untaken = [...chunk];
    const ready: { item: DatabaseMoveItem; child: HeldChild; abort: AbortController }[] = [];
    let taking: Promise<void> | null = null;
    const refill = () =>
      (taking ??= (async () => {
        const group = untaken.splice(0, move.concurrency);
        const children = await this.children.take(move, group, owner, leaseMs);
        for (const item of group) {
          const child = children.get(item.id);
          if (!child) {
            parent.log(`install ${item.installId}: its job ${item.jobId} is left to the queue (its install is busy, or the job was there already)`);
            continue;
          }
          const entry = { item, child, abort: new AbortController() };
          held.set(child.jobId, entry);
          ready.push(entry);
        }
      })().finally(() => (taking = null)));
    try {
      await Promise.all(
        Array.from({ length: move.concurrency }, async () => {
          while (!parent.signal.aborted) {
            const next = ready.shift();
            if (!next) {
              if (untaken.length === 0 && !taking) return;
              await refill();
              continue;
            }
            try {
              await this.runChild(next.item, next.child, next.abort, shared, parent);
            } finally {
              held.delete(next.child.jobId);
            }
          }
        }),
      );
    } finally {
      for (const { child } of ready.splice(0)) {
        held.delete(child.jobId);
        await this.giveBack(child);
      }
    }
  }

  /** In its own secret scope, as a worker runs each job: its install's secrets are masked in what it writes, and the scope stays small. */
  private runChild(item: DatabaseMoveItem, child: HeldChild, abort: AbortController, shared: MoveShared, parent: JobContext): Promise<void> {
    return withSecretScope(() => this.runChildInScope(item, child, abort, shared, parent));
  }

  private async runChildInScope(item: DatabaseMoveItem, child: HeldChild, abort: AbortController, shared: MoveShared, parent: JobContext): Promise<void> {
    const stop = () => abort.abort(parent.signal.reason);
    parent.signal.addEventListener('abort', stop, { once: true });
    const output = new JobOutput(this.jobs, child.jobId, child.attempt, (error) => this.logger.warn({ err: error, jobId: child.jobId }, 'output lines of a held child could not be written'));
    const context = output.context(child, abort.signal);
    try {
      await withAbortSignal(abort.signal, () => this.sagas.move({ moveId: shared.move.id, installId: item.installId }, context, { ...shared, item }));
      await output.flush();
      if (!(await this.jobs.complete(child.jobId, child.fence, child.resourceKey))) parent.log(`install ${item.installId}: its job ${child.jobId} was taken back meanwhile`);
    } catch (error) {
      const message = redactSecrets(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
      context.error(message);
      await output.flush();
      await this.end(child, error, message, abort.signal, parent);
    } finally {
      await output.close();
      parent.signal.removeEventListener('abort', stop);
    }
  }

  /** A failed run ends its job as a worker would (settleFailedRun); one stopped with the parent goes back to the queue at once, its attempt given back. */
  private async end(child: HeldChild, error: unknown, message: string, signal: AbortSignal, parent: JobContext): Promise<void> {
    if (parent.signal.aborted) {
      await this.giveBack(child);
      return;
    }
    if (signal.aborted && signal.reason instanceof LeaseLostError) return;
    if (!(error instanceof JobDeferredError)) parent.error(`install job ${child.jobId}: ${message}`);
    await settleFailedRun(this.jobs, { id: child.jobId, fence: child.fence, attempts: child.attempt, maxAttempts: child.maxAttempts, resourceKey: child.resourceKey }, error, message, DATABASE_MOVE_INSTALL.options.backoff);
  }

  /** Back to the queue, its attempt given back (fenced: a child whose lease was lost meanwhile is not touched); a failure is reported, and the reaper takes it back when its lease runs out. */
  private async giveBack(child: HeldChild): Promise<void> {
    try {
      await this.jobs.defer(child.jobId, child.fence, 'its parent stopped', 0, child.resourceKey);
    } catch (error) {
      this.logger.warn({ err: error, jobId: child.jobId }, 'a held child could not be given back to the queue; the reaper takes it back when its lease runs out');
    }
  }

  /** Keeps the held children's leases; one no longer held is stopped (someone else has it now). */
  private async renew(held: Map<number, { child: HeldChild; abort: AbortController }>, leaseMs: number): Promise<void> {
    for (const { child, abort } of [...held.values()]) {
      try {
        if (!(await this.jobs.renew(child.jobId, child.fence, leaseMs))) abort.abort(new LeaseLostError(child.jobId, 'taken back'));
      } catch (error) {
        this.logger.warn({ err: error, jobId: child.jobId }, 'lease renewal of a held child failed; retrying soon');
      }
    }
  }
}
