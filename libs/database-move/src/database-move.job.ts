import { Injectable } from '@nestjs/common';
import { DataSource, In } from 'typeorm';
import { AuditEventRepository, DatabaseMove, DatabaseMoveItem, Job } from '@app/catalog';
import { redactSecrets } from '@app/common';
import { defineJobKind, JobDeferredError, JobHandler, type JobContext } from '@app/queue';
import { ITEM_ENDED } from './move-items.js';
import { MoveSagasRunner } from './move-sagas.runner.js';

export interface DatabaseMovePayload {
  moveId: number;
}

/** A database move's parent job: its installs' sagas (run by it, `concurrency` at once), then the end. */
export const DATABASE_MOVE = defineJobKind<DatabaseMovePayload>('database-move.run', { maxAttempts: 5, backoff: { baseMs: 2_000, maxMs: 60_000 } });

/** One move at a time (two moves of the same installs would race on their files). */
export const DATABASE_MOVE_RESOURCE_KEY = 'database-move';

/** How often the parent looks at its children while they run (deferred: no worker slot held, no attempt used). */
const WATCH_MS = 250;

/**
 * The parent job of a database move. Each run does what is left and defers
 * itself while children it does not hold run, so a killed worker's job
 * resumes where the catalog says it is: the items without a child job get
 * one, held and run here (MoveSagasRunner); children taken back from a dead
 * worker, or given back to retry, run as queued jobs (their sagas resume
 * from their journals); an item whose child job gave up is failed with its
 * error; and once every item ended the move is done, or failed with the
 * failed installs named.
 */
@Injectable()
export class DatabaseMoveJob {
  constructor(
    private readonly dataSource: DataSource,
    private readonly runner: MoveSagasRunner,
    private readonly audit: AuditEventRepository,
  ) {}

  @JobHandler(DATABASE_MOVE)
  async run({ moveId }: DatabaseMovePayload, job: JobContext): Promise<void> {
    const moves = this.dataSource.getRepository(DatabaseMove);
    const move = await moves.findOneBy({ id: moveId });
    if (!move) return job.log(`database move ${moveId} is gone`);
    if (move.state !== 'running') return job.log(`database move ${moveId} is ${move.state} already`);
    const itemRows = () => this.dataSource.getRepository(DatabaseMoveItem).find({ where: { moveId }, order: { installId: 'ASC' } });
    let items = await itemRows();
    await this.reapDeadChildren(items, job);
    const fresh = items.filter((i) => !ITEM_ENDED.has(i.state) && i.jobId === null);
    if (fresh.length > 0) {
      await this.runner.run(move, fresh, job);
      items = await itemRows();
      await this.reapDeadChildren(items, job);
    }

    const open = items.filter((i) => !ITEM_ENDED.has(i.state));
    if (open.length > 0) throw new JobDeferredError(`${items.length - open.length} of ${items.length} installs ended`, WATCH_MS);

    const failed = items.filter((i) => i.state === 'failed').map((i) => i.installId);
    const counts = ['done', 'failed', 'skipped'].map((s) => `${items.filter((i) => i.state === s).length} ${s}`).join(', ');
    const error = failed.length > 0 ? `failed on install(s) ${failed.join(', ')}`.slice(0, 1024) : null;
    await moves.update({ id: moveId }, { state: failed.length > 0 ? 'failed' : 'done', finishedAt: new Date(), error });
    job.log(`database move ${moveId} from server ${move.fromServerId} to ${move.toServerId}: ${counts}`);
    await this.audit.record({ actor: `job:${job.jobId}`, via: 'worker', action: failed.length > 0 ? 'database.move.failed' : 'database.moved', targetType: 'server', targetId: move.toServerId, details: { moveId, from: move.fromServerId, to: move.toServerId, counts, failed } });
  }

  /** An item whose child job died (gave up, was cancelled) without ending it fails with the job's last error. */
  private async reapDeadChildren(items: DatabaseMoveItem[], job: JobContext): Promise<void> {
    const open = items.filter((i) => !ITEM_ENDED.has(i.state) && i.jobId !== null);
    if (open.length === 0) return;
    const dead = await this.dataSource.getRepository(Job).find({ where: { id: In(open.map((i) => i.jobId!)), state: In(['dead', 'cancelled']) } });
    for (const child of dead) {
      const item = open.find((i) => i.jobId === child.id)!;
      const error = `its job ${child.id} ${child.state === 'dead' ? 'gave up' : 'was cancelled'}: ${redactSecrets(child.lastError ?? 'no error recorded')}`.slice(0, 2048);
      await this.dataSource.getRepository(DatabaseMoveItem).update({ id: item.id }, { state: 'failed', error, finishedAt: new Date() });
      item.state = 'failed';
      item.error = error;
      job.error(`install ${item.installId}: ${error}`);
    }
  }
}
