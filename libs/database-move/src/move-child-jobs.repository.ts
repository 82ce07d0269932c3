import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import type { DatabaseMove, DatabaseMoveItem } from '@app/catalog';
import { QueueService } from '@app/queue';
import { DATABASE_MOVE_INSTALL } from './install-database-move.job.js';

/** A child job the parent holds itself: its saga runs in the parent's process, journaled under this job's id and fence. */
export interface HeldChild {
  jobId: number;
  fence: number;
  attempt: number;
  maxAttempts: number;
  resourceKey: string;
}

/**
 * The per-install child jobs of a database move. Each item's job is made
 * already claimed by the parent's own worker (running, with its lease
 * owner and a lease; many items' in one transaction): no other worker ever
 * sees it ready, a reaper treats it as
 * that worker's (taken back at once when its process is gone, or when the
 * lease runs out), and once taken back it runs as an ordinary child job
 * (InstallDatabaseMoveJob), its saga resuming from its journal. A job whose
 * install is held by another running job (`install:<id>`) is left ready for
 * a worker, which queues it behind that job as the claim does.
 */
@Injectable()
export class MoveChildJobs {
  constructor(
    private readonly dataSource: DataSource,
    private readonly queue: QueueService,
  ) {}

  /** Who holds the parent job now (the children it takes carry the same owner), or null when nobody does. */
  async holderOf(jobId: number): Promise<string | null> {
    const [row] = await this.dataSource.query(`SELECT lease_owner FROM jobs WHERE id = ? AND state = 'running'`, [jobId]);
    return (row as { lease_owner: string | null } | undefined)?.lease_owner ?? null;
  }

  /**
   * The items' child jobs (one transaction), each held by `owner` (made
   * running, with its lease) or, when that cannot be (its install is held by
   * another running job, or its job exists already), left to the queue: null.
   */
  async take(move: DatabaseMove, items: readonly DatabaseMoveItem[], owner: string, leaseMs: number): Promise<Map<number, HeldChild | null>> {
    const out = new Map<number, HeldChild | null>();
    if (items.length === 0) return out;
    const maxAttempts = DATABASE_MOVE_INSTALL.options.maxAttempts;
    let left = false;
    await this.dataSource.transaction(async (m) => {
      const runner = m.queryRunner!;
      const jobIds = new Map<number, number>();
      for (const item of items) {
        const payload = { moveId: move.id, installId: item.installId };
        const keys = { idempotencyKey: `databasemove:${move.id}:install:${item.installId}`, resourceKey: `install:${item.installId}`, parentId: move.jobId ?? undefined };
        const held = await this.queue.enqueueHeld(DATABASE_MOVE_INSTALL, payload, { ...keys, owner, leaseMs, manager: m });
        if (held) {
          jobIds.set(item.id, held.id);
          out.set(item.id, { jobId: held.id, fence: held.fence, attempt: held.attempt, maxAttempts, resourceKey: keys.resourceKey });
          continue;
        }
        // Its install is held by another running job (a worker queues it behind that one), or its job exists: the queue's.
        const { job } = await this.queue.enqueue(DATABASE_MOVE_INSTALL, payload, { ...keys, manager: m });
        jobIds.set(item.id, job.id);
        out.set(item.id, null);
        left = true;
      }
      const ids = [...jobIds];
      await runner.query(
        `UPDATE database_move_items SET job_id = CASE id ${ids.map(() => 'WHEN ? THEN ?').join(' ')} END WHERE job_id IS NULL AND id IN (${ids.map(() => '?').join(', ')})`,
        [...ids.flat(), ...ids.map(([id]) => id)],
      );
      for (const item of items) item.jobId = jobIds.get(item.id) ?? item.jobId;
    });
    if (left) this.queue.nudge();
    return out;
  }
}
