import { Injectable } from '@nestjs/common';
import { DataSource, IsNull } from 'typeorm';
import { DatabaseMoveItem, type DatabaseMove } from '@app/catalog';
import { QueueService, sqlDialect, type SqlDialect } from '@app/queue';
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
 * and, in the same transaction, claimed by the parent's own worker (its
 * lease owner): no other worker ever sees it ready, a reaper treats it as
 * that worker's (taken back at once when its process is gone, or when the
 * lease runs out), and once taken back it runs as an ordinary child job
 * (InstallDatabaseMoveJob), its saga resuming from its journal. A job whose
 * install is held by another running job (`install:<id>`) is left ready for
 * a worker, which queues it behind that job as the claim does.
 */
@Injectable()
export class MoveChildJobs {
  private readonly sql: SqlDialect;

  constructor(
    private readonly dataSource: DataSource,
    private readonly queue: QueueService,
  ) {
    this.sql = sqlDialect(dataSource);
  }

  /** Who holds the parent job now (the children it takes carry the same owner), or null when nobody does. */
  async holderOf(jobId: number): Promise<string | null> {
    const [row] = await this.dataSource.query(`SELECT lease_owner FROM jobs WHERE id = ? AND state = 'running'`, [jobId]);
    return (row as { lease_owner: string | null } | undefined)?.lease_owner ?? null;
  }

  /** The item's child job, held by `owner` (null: left to the queue, a worker runs it). */
  async take(move: DatabaseMove, item: DatabaseMoveItem, owner: string, leaseMs: number): Promise<HeldChild | null> {
    const resourceKey = `install:${item.installId}`;
    const held = await this.dataSource.transaction(async (m) => {
      const { job, created } = await this.queue.enqueue(
        DATABASE_MOVE_INSTALL,
        { moveId: move.id, installId: item.installId },
        { manager: m, idempotencyKey: `databasemove:${move.id}:install:${item.installId}`, resourceKey, parentId: move.jobId ?? undefined },
      );
      await m.update(DatabaseMoveItem, { id: item.id, jobId: IsNull() }, { jobId: job.id });
      item.jobId = job.id;
      // Only a job made just now: an older one (a retry waiting for its time) is the queue's.
      if (!created) return null;
      const lease = this.sql.nowPlus(leaseMs);
      try {
        const result = await m.queryRunner!.query(
          `UPDATE jobs SET state = 'running', running_key = resource_key, lease_owner = ?, lease_expires_at = ${lease.sql},
             fence = fence + 1, attempts = attempts + 1, started_at = ${this.sql.now}, finished_at = NULL
           WHERE id = ? AND state = 'ready'`,
          [owner, lease.param, job.id],
          true,
        );
        if ((result.affected ?? 0) !== 1) return null;
      } catch (error) {
        // Its install's key is held by another running job: a worker claims it, and queues it behind that one.
        if (!this.sql.isDuplicateKey(error)) throw error;
        return null;
      }
      return { jobId: job.id, fence: Number(job.fence) + 1, attempt: Number(job.attempts) + 1, maxAttempts: Number(job.maxAttempts), resourceKey };
    });
    if (!held) this.queue.nudge();
    return held;
  }
}
