import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, type EntityManager, type QueryResult, type QueryRunner } from 'typeorm';
import type { IsolationLevel } from 'typeorm/driver/types/IsolationLevel.js';

import { Job, JOB_STATES, JobLog, type JobState } from '@app/catalog';
import { MysqlStatements, type StatementRunner } from './mysql-statements.js';
import { NEEDS_ATTENTION } from './queue.errors.js';
import { sqlDialect, type SqlDialect } from './sql-dialect.js';

export interface NewJob {
  kind: string;
  payload: object;
  maxAttempts: number;
  priority?: number;
  /** Run no sooner than this many milliseconds from now (database clock). */
  delayMs?: number;
  idempotencyKey?: string | null;
  resourceKey?: string | null;
  parentId?: number | null;
}

/** What a worker holds after a claim: the job and the fence its writes must carry. */
export interface ClaimedJob {
  id: number;
  kind: string;
  payload: Record<string, unknown>;
  attempts: number;
  maxAttempts: number;
  fence: number;
  resourceKey: string | null;
}

export interface JobFilter {
  state?: JobState;
  kind?: string;
  resourceKey?: string;
  beforeId?: number;
  limit?: number;
}

export interface QueueStats {
  byState: Record<JobState, number>;
  oldestReadyAgeSeconds: number;
}

/** A claimable row as read by the claim queries. */
interface ClaimRow {
  id: number;
  kind: string;
  payload: string;
  attempts: number;
  max_attempts: number;
  fence: number;
  resource_key: string | null;
}

function toClaimed(r: ClaimRow): ClaimedJob {
  return {
    id: Number(r.id),
    kind: r.kind,
    payload: JSON.parse(r.payload) as Record<string, unknown>,
    attempts: Number(r.attempts),
    maxAttempts: Number(r.max_attempts),
    fence: Number(r.fence),
    resourceKey: r.resource_key,
  };
}

/** A datetime as the driver returns it: a Date (mysql2) or UTC text (SQLite). */
function dbTime(value: Date | string): Date {
  return value instanceof Date ? value : new Date(`${value.replace(' ', 'T')}Z`);
}

/** A running job as a reaper reads it. */
interface HeldRow {
  id: number;
  attempts: number;
  max_attempts: number;
  fence: number;
  lease_owner: string | null;
  resource_key: string | null;
}

/** Jobs a reaper put back in the queue, and jobs it ended dead (out of attempts). */
export interface TakenBack {
  requeued: number;
  buried: number;
}

export interface LogEntry {
  level: 'info' | 'error';
  line: string;
}

const statementsOf = (runner: QueryRunner): StatementRunner => ({ run: (sql, params) => runner.query(sql, params, true) });

const FINISHED: readonly JobState[] = ['done', 'dead', 'cancelled'];
const MAX_CONFLICT_RETRIES = 5;

/**
 * The jobs table. Every state change a worker makes is fenced
 * (`WHERE id = ? AND fence = ? AND state = 'running'`): a worker that lost its
 * lease changes nothing. Times come from the database clock.
 */
@Injectable()
export class JobRepository {
  private readonly sql: SqlDialect;
  /** MySQL/MariaDB only: statements and claims straight on mysql2 (SQLite goes through TypeORM's runner). */
  private readonly mysql: MysqlStatements | null;
  private sqliteClaims: Promise<void> = Promise.resolve();

  constructor(@InjectDataSource() private readonly dataSource: DataSource) {
    this.sql = sqlDialect(dataSource);
    this.mysql = MysqlStatements.of(dataSource);
  }

  /**
   * Inserts a job, or returns the existing one with the same idempotency key.
   * Pass the caller's EntityManager to enqueue inside its transaction.
   */
  async enqueue(job: NewJob, manager: EntityManager = this.dataSource.manager): Promise<{ job: Job; created: boolean }> {
    const jobs = manager.getRepository(Job);
    if (job.idempotencyKey) {
      const existing = await jobs.findOne({ where: { idempotencyKey: job.idempotencyKey } });
      if (existing) return { job: existing, created: false };
    }
    const runAfter = this.sql.nowPlus(job.delayMs ?? 0);
    try {
      const result = await this.statement(
        `INSERT INTO jobs (kind, payload, state, priority, run_after, attempts, max_attempts, fence,
           idempotency_key, resource_key, parent_id)
         VALUES (?, ?, 'ready', ?, ${runAfter.sql}, 0, ?, 0, ?, ?, ?)`,
        [
          job.kind,
          JSON.stringify(job.payload),
          job.priority ?? 0,
          runAfter.param,
          job.maxAttempts,
          job.idempotencyKey ?? null,
          job.resourceKey ?? null,
          job.parentId ?? null,
        ],
        manager,
      );
      const raw = result.raw as { insertId?: number } | number | bigint;
      const id = Number(typeof raw === 'object' ? raw.insertId : raw);
      return { job: await jobs.findOneOrFail({ where: { id } }), created: true };
    } catch (error) {
      if (!job.idempotencyKey || !this.sql.isDuplicateKey(error)) throw error;
      // Another producer won the race for this key: return its job.
      const existing = await jobs.findOne({
        where: { idempotencyKey: job.idempotencyKey },
        ...(this.sql.kind === 'mysql' && manager.queryRunner?.isTransactionActive
          ? { lock: { mode: 'pessimistic_read' as const } }
          : {}),
      });
      if (!existing) throw error;
      return { job: existing, created: false };
    }
  }

  /**
   * Claims up to `limit` ready jobs for `owner`: marks them running with a
   * lease and a new fence, counting the attempt. A job whose resource key is
   * held by a running job is marked blocked instead.
   */
  /**
   * A new job made already claimed by `owner`, in the caller's transaction:
   * running, attempt 1, fence 1, its resource key held, a lease of
   * `leaseMs`, as a claim would leave it (for a parent that runs the job's
   * work itself; once taken back, it runs as any job). Null when it cannot
   * be: its resource key is held by a running job, or its idempotency key
   * exists (the caller enqueues it instead). On a duplicate the statement
   * alone fails; the caller's transaction goes on.
   */
  async insertHeld(job: NewJob & { resourceKey: string }, owner: string, leaseMs: number, manager: EntityManager): Promise<{ id: number; fence: number; attempt: number } | null> {
    const lease = this.sql.nowPlus(leaseMs);
    try {
      const result = await this.statement(
        `INSERT INTO jobs (kind, payload, state, priority, run_after, attempts, max_attempts, fence, idempotency_key, resource_key, running_key, lease_owner, lease_expires_at, started_at, parent_id)
         VALUES (?, ?, 'running', ?, ${this.sql.now}, 1, ?, 1, ?, ?, ?, ?, ${lease.sql}, ${this.sql.now}, ?)`,
        [job.kind, JSON.stringify(job.payload), job.priority ?? 0, job.maxAttempts, job.idempotencyKey ?? null, job.resourceKey, job.resourceKey, owner, lease.param, job.parentId ?? null],
        manager,
      );
      const raw = result.raw as { insertId?: number } | number | bigint;
      return { id: Number(typeof raw === 'object' ? raw.insertId : raw), fence: 1, attempt: 1 };
    } catch (error) {
      if (this.sql.isDuplicateKey(error)) return null;
      throw error;
    }
  }

  async claim(owner: string, limit: number, leaseMsOf: (kind: string) => number): Promise<ClaimedJob[]> {
    if (limit <= 0) return [];
    return this.sql.kind === 'mysql'
      ? this.retryConflicts(() => this.claimMysql(owner, limit, leaseMsOf))
      : this.claimSqlite(owner, limit, leaseMsOf);
  }

  private async claimMysql(owner: string, limit: number, leaseMsOf: (kind: string) => number): Promise<ClaimedJob[]> {
    // READ COMMITTED: under REPEATABLE READ, InnoDB's locks on the claim index
    // entries a claimer has just rewritten made a concurrent SKIP LOCKED scan
    // return nothing at all (measured on MariaDB 10.11), starving other workers.
    // The claim sessions are READ COMMITTED for good; TypeORM's runner, with a
    // SET TRANSACTION first, when they are all busy.
    const work = async (runner: StatementRunner): Promise<ClaimedJob[]> => {
      // Ordered on the full claim index (state, priority, run_after, id), and
      // forced to it: left to choose, MariaDB weighed the indexes starting with
      // `state` over pages full of just-claimed jobs' delete-marked entries,
      // which made a claim cost 6 ms instead of 0.3 ms while the queue was busy.
      // The rows stay locked until commit, so what is read here is what gets claimed.
      const candidates = (
        await runner.run(
          `SELECT id, kind, payload, attempts, max_attempts, fence, resource_key FROM jobs FORCE INDEX (ix_jobs_claim)
           WHERE state = 'ready' AND run_after <= ${this.sql.now}
           ORDER BY priority, run_after, id LIMIT ? ${this.sql.skipLocked}`,
          [limit],
        )
      ).records as ClaimRow[];
      const claimed: ClaimRow[] = [];
      // Jobs without a resource key cannot collide: one statement per lease length.
      const free = candidates.filter((c) => c.resource_key === null);
      for (const leaseMs of new Set(free.map((c) => leaseMsOf(c.kind)))) {
        const group = free.filter((c) => leaseMsOf(c.kind) === leaseMs);
        const lease = this.sql.nowPlus(leaseMs);
        await runner.run(
          `UPDATE jobs SET state = 'running', lease_owner = ?, lease_expires_at = ${lease.sql},
             fence = fence + 1, attempts = attempts + 1, started_at = ${this.sql.now}, finished_at = NULL
           WHERE id IN (${group.map(() => '?').join(', ')})`,
          [owner, lease.param, ...group.map((c) => c.id)],
        );
        claimed.push(...group);
      }
      // A keyed job may find its key taken: the unique running_key decides, one by one.
      for (const candidate of candidates.filter((c) => c.resource_key !== null)) {
        if (await this.markRunning(runner, candidate.id, owner, leaseMsOf(candidate.kind))) claimed.push(candidate);
      }
      const order = new Map(candidates.map((c, i) => [c.id, i]));
      return claimed
        .sort((a, b) => order.get(a.id)! - order.get(b.id)!)
        .map((r) => ({ ...toClaimed(r), attempts: Number(r.attempts) + 1, fence: Number(r.fence) + 1 }));
    };
    return (await this.mysql?.inClaimTransaction(work)) ?? this.inTransaction('READ COMMITTED', (runner) => work(statementsOf(runner)));
  }

  /**
   * SQLite has one writer at a time: each claim is one conditional statement,
   * so processes sharing the file never claim a job twice. Claims of this
   * process are serialized, or they would pick the same candidates and
   * claim fewer than they could.
   */
  private async claimSqlite(owner: string, limit: number, leaseMsOf: (kind: string) => number): Promise<ClaimedJob[]> {
    const previous = this.sqliteClaims;
    let release!: () => void;
    this.sqliteClaims = new Promise<void>((resolve) => (release = resolve));
    await previous;
    const runner = this.dataSource.createQueryRunner();
    try {
      const statements = statementsOf(runner);
      const candidates: { id: number; kind: string }[] = await runner.query(
        `SELECT id, kind FROM jobs WHERE state = 'ready' AND run_after <= ${this.sql.now}
         ORDER BY state, priority, run_after, id LIMIT ?`,
        [limit],
      );
      const claimed: number[] = [];
      for (const candidate of candidates) {
        if (await this.markRunning(statements, candidate.id, owner, leaseMsOf(candidate.kind))) claimed.push(candidate.id);
      }
      return this.readClaimed(runner, claimed);
    } finally {
      await runner.release();
      release();
    }
  }

  /** Running, or blocked when its resource key is taken (the unique running_key refuses it). */
  private async markRunning(runner: StatementRunner, id: number, owner: string, leaseMs: number): Promise<boolean> {
    const lease = this.sql.nowPlus(leaseMs);
    try {
      const result = await runner.run(
        `UPDATE jobs SET state = 'running', running_key = resource_key, lease_owner = ?,
           lease_expires_at = ${lease.sql}, fence = fence + 1, attempts = attempts + 1,
           started_at = ${this.sql.now}, finished_at = NULL
         WHERE id = ? AND state = 'ready'`,
        [owner, lease.param, id],
      );
      return (result.affected ?? 0) === 1;
    } catch (error) {
      if (!this.sql.isDuplicateKey(error)) throw error;
      await runner.run(`UPDATE jobs SET state = 'blocked' WHERE id = ? AND state = 'ready'`, [id]);
      return false;
    }
  }

  private async readClaimed(runner: QueryRunner, ids: number[]): Promise<ClaimedJob[]> {
    if (ids.length === 0) return [];
    const rows: ClaimRow[] = await runner.query(
      `SELECT id, kind, payload, attempts, max_attempts, fence, resource_key FROM jobs
       WHERE id IN (${ids.map(() => '?').join(', ')})`,
      ids,
    );
    const position = new Map(ids.map((id, i) => [id, i]));
    rows.sort((a, b) => position.get(Number(a.id))! - position.get(Number(b.id))!);
    return rows.map(toClaimed);
  }

  /** Extends the lease; false when the worker no longer holds the job. */
  async renew(id: number, fence: number, leaseMs: number): Promise<boolean> {
    const lease = this.sql.nowPlus(leaseMs);
    return this.fenced(`lease_expires_at = ${lease.sql}`, [lease.param], id, fence);
  }

  /** `resourceKey`: the claimed job's key, when the caller knows it (saves a lookup). */
  async complete(id: number, fence: number, resourceKey?: string | null): Promise<boolean> {
    return this.finish(`state = 'done', last_error = NULL`, [], id, fence, resourceKey);
  }

  /** Dead: out of attempts, or a permanent error. */
  async bury(id: number, fence: number, error: string, resourceKey?: string | null): Promise<boolean> {
    return this.finish(`state = 'dead', last_error = ?`, [error], id, fence, resourceKey);
  }

  /** Back to ready after a delay, for another attempt. */
  async retryLater(id: number, fence: number, error: string, delayMs: number, resourceKey?: string | null): Promise<boolean> {
    const at = this.sql.nowPlus(delayMs);
    return this.finish(`state = 'ready', last_error = ?, run_after = ${at.sql}, finished_at = NULL`, [error, at.param], id, fence, resourceKey);
  }

  /** Back to ready after a delay, the attempt given back: the job waited for other work, it did not fail. */
  async defer(id: number, fence: number, reason: string, delayMs: number, resourceKey?: string | null): Promise<boolean> {
    const at = this.sql.nowPlus(delayMs);
    return this.finish(`state = 'ready', attempts = attempts - 1, last_error = ?, run_after = ${at.sql}, finished_at = NULL`, [reason, at.param], id, fence, resourceKey);
  }

  private async finish(set: string, params: unknown[], id: number, fence: number, resourceKey?: string | null): Promise<boolean> {
    const done = await this.fenced(
      `${set}, running_key = NULL, lease_owner = NULL, lease_expires_at = NULL, finished_at = ${this.sql.now}`,
      params,
      id,
      fence,
    );
    if (done && resourceKey !== null) await this.promoteNextFor(id, resourceKey);
    return done;
  }

  private async fenced(set: string, params: unknown[], id: number, fence: number): Promise<boolean> {
    const result = await this.statement(`UPDATE jobs SET ${set} WHERE id = ? AND fence = ? AND state = 'running'`, [
      ...params,
      id,
      fence,
    ]);
    return (result.affected ?? 0) === 1;
  }

  /** When a job frees its resource key, the oldest job blocked on that key becomes ready. */
  private async promoteNextFor(id: number, knownKey?: string): Promise<void> {
    let key = knownKey;
    if (key === undefined) {
      const [row] = await this.rows<{ resource_key: string | null }>(`SELECT resource_key FROM jobs WHERE id = ?`, [id]);
      key = row?.resource_key ?? undefined;
    }
    if (!key) return;
    // The derived table lets MySQL select from the table it updates.
    await this.statement(
      `UPDATE jobs SET state = 'ready' WHERE state = 'blocked' AND id = (
         SELECT id FROM (SELECT id FROM jobs WHERE state = 'blocked' AND resource_key = ?
                         ORDER BY priority, run_after, id LIMIT 1) AS next_job)`,
      [key],
    );
  }

  /**
   * Blocked jobs whose key no running job holds (their holder finished between
   * their claim and their blocking, or died) become ready again.
   */
  async promoteOrphanedBlocked(): Promise<number> {
    const result = await this.statement(
      `UPDATE jobs SET state = 'ready' WHERE state = 'blocked' AND resource_key NOT IN (
         SELECT running_key FROM (SELECT running_key FROM jobs WHERE running_key IS NOT NULL) AS held)`,
      [],
    );
    return result.affected ?? 0;
  }

  /**
   * Running jobs whose lease expired (their worker died or froze): back to
   * the queue, or dead when their attempts are spent.
   */
  async reapExpired(): Promise<TakenBack> {
    const expired = await this.rows<HeldRow>(
      `SELECT id, attempts, max_attempts, fence, lease_owner, resource_key FROM jobs
       WHERE state = 'running' AND lease_expires_at < ${this.sql.now} ORDER BY id LIMIT 500`,
    );
    // Re-checked against the clock: a worker that renewed meanwhile keeps its job.
    return this.takeBack(expired, `lease_expires_at < ${this.sql.now}`, [], (job) =>
      `lease expired (worker ${job.lease_owner ?? '?'} died or stalled) on attempt ${job.attempts}`,
    );
  }

  /** Owners of running jobs, for a worker to find the dead ones on its own host. */
  async runningOwners(): Promise<string[]> {
    const rows = await this.rows<{ lease_owner: string }>(
      `SELECT DISTINCT lease_owner FROM jobs WHERE state = 'running' AND lease_owner IS NOT NULL`,
    );
    return rows.map((r) => r.lease_owner);
  }

  /**
   * Takes back at once, without waiting for their leases, the running jobs
   * of an owner whose process is known to be gone. Only the caller can know
   * that (it runs on the owner's host): see isDeadHolderHere.
   */
  async reclaimFromDeadOwner(owner: string): Promise<TakenBack> {
    const held = await this.rows<HeldRow>(
      `SELECT id, attempts, max_attempts, fence, lease_owner, resource_key FROM jobs
       WHERE state = 'running' AND lease_owner = ? ORDER BY id`,
      [owner],
    );
    return this.takeBack(held, 'lease_owner = ?', [owner], (job) =>
      `worker ${owner} is gone (its process no longer runs) on attempt ${job.attempts}`,
    );
  }

  /**
   * Jobs whose holder died go back to ready where they were in the queue:
   * `run_after` is left as it was (no backoff: the job did not fail, its
   * worker died), so the claim order (priority, run_after, id) puts them
   * before the jobs queued after them. The attempt stays counted (it was at
   * claim), and a job out of attempts ends dead, so a job that kills its
   * worker every time does not loop. Each change is fenced and guarded by
   * `guard`.
   */
  private async takeBack(held: HeldRow[], guard: string, guardParams: unknown[], why: (job: HeldRow) => string): Promise<TakenBack> {
    let requeued = 0;
    let buried = 0;
    for (const job of held) {
      const exhausted = Number(job.attempts) >= Number(job.max_attempts);
      const result = await this.statement(
        exhausted
          ? `UPDATE jobs SET state = 'dead', last_error = ?, running_key = NULL, lease_owner = NULL,
               lease_expires_at = NULL, finished_at = ${this.sql.now}
             WHERE id = ? AND fence = ? AND state = 'running' AND ${guard}`
          : `UPDATE jobs SET state = 'ready', last_error = ?, running_key = NULL, lease_owner = NULL,
               lease_expires_at = NULL
             WHERE id = ? AND fence = ? AND state = 'running' AND ${guard}`,
        [exhausted ? `${why(job)}; no attempts left` : why(job), job.id, job.fence, ...guardParams],
      );
      if ((result.affected ?? 0) !== 1) continue;
      if (!exhausted) {
        // Its key is left to it, not to the jobs blocked behind it: it is claimed first.
        requeued++;
        continue;
      }
      buried++;
      if (job.resource_key) await this.promoteNextFor(job.id, job.resource_key);
    }
    return { requeued, buried };
  }

  /**
   * Plain INSERTs of up to 500 lines each: a job's output is written on the
   * worker's hot path (the entity's insert also read back its defaults), and
   * a chatty step's batch stays under SQLite's limit on parameters.
   */
  async appendLogs(jobId: number, attempt: number, entries: LogEntry[]): Promise<void> {
    for (let from = 0; from < entries.length; from += 500) {
      const chunk = entries.slice(from, from + 500);
      await this.statement(
        `INSERT INTO job_logs (job_id, attempt, level, line) VALUES ${chunk.map(() => '(?, ?, ?, ?)').join(', ')}`,
        chunk.flatMap((e) => [jobId, attempt, e.level, e.line]),
      );
    }
  }

  /** Output lines after `afterId`, in order: tail a job by passing the last id seen. */
  logs(jobId: number, afterId = 0, limit = 1000): Promise<JobLog[]> {
    return this.dataSource
      .getRepository(JobLog)
      .createQueryBuilder('l')
      .where('l.job_id = :jobId AND l.id > :afterId', { jobId, afterId })
      .orderBy('l.id', 'ASC')
      .limit(limit)
      .getMany();
  }

  /** Newest first; `beforeId` pages backwards. */
  list(filter: JobFilter = {}): Promise<Job[]> {
    const query = this.dataSource.getRepository(Job).createQueryBuilder('j').orderBy('j.id', 'DESC').limit(filter.limit ?? 50);
    if (filter.state) query.andWhere('j.state = :state', { state: filter.state });
    if (filter.kind) query.andWhere('j.kind = :kind', { kind: filter.kind });
    if (filter.resourceKey) query.andWhere('j.resource_key = :resourceKey', { resourceKey: filter.resourceKey });
    if (filter.beforeId) query.andWhere('j.id < :beforeId', { beforeId: filter.beforeId });
    return query.getMany();
  }

  /** Jobs per state, and how long the oldest due job has waited (database clock). */
  async stats(): Promise<QueueStats> {
    const counts = await this.rows<{ state: JobState; n: number | string }>(
      `SELECT state, COUNT(*) AS n FROM jobs GROUP BY state`,
    );
    const [oldest] = await this.rows<{ oldest: Date | string | null; now: Date | string }>(
      `SELECT MIN(run_after) AS oldest, ${this.sql.now} AS now FROM jobs WHERE state = 'ready' AND run_after <= ${this.sql.now}`,
    );
    const byState = Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as Record<JobState, number>;
    for (const row of counts) byState[row.state] = Number(row.n);
    const row = oldest as { oldest: Date | string | null; now: Date | string };
    const waited = row.oldest ? dbTime(row.now).getTime() - dbTime(row.oldest).getTime() : 0;
    return { byState, oldestReadyAgeSeconds: Math.max(0, Math.round(waited / 1000)) };
  }

  /** Unfinished jobs (ready, blocked, running) per kind and state, for the metrics. */
  async pendingByKind(): Promise<{ kind: string; state: JobState; count: number }[]> {
    const rows = await this.rows<{ kind: string; state: JobState; n: number | string }>(
      `SELECT kind, state, COUNT(*) AS n FROM jobs WHERE state IN ('ready', 'blocked', 'running') GROUP BY kind, state`,
    );
    return rows.map((r) => ({ kind: r.kind, state: r.state, count: Number(r.n) }));
  }

  /** Dead jobs waiting for an operator (a saga whose compensation failed), oldest first. */
  async needingAttention(limit = 20): Promise<{ id: number; kind: string; lastError: string }[]> {
    const rows = await this.rows<{ id: number; kind: string; last_error: string }>(
      `SELECT id, kind, last_error FROM jobs WHERE state = 'dead' AND last_error LIKE ? ORDER BY id LIMIT ?`,
      [`${NEEDS_ATTENTION}%`, limit],
    );
    return rows.map((r) => ({ id: Number(r.id), kind: r.kind, lastError: r.last_error }));
  }

  /** Deletes a finished job (and its output and journal); false for one still pending or running. */
  async remove(id: number): Promise<boolean> {
    const result = await this.statement(
      `DELETE FROM jobs WHERE id = ? AND state IN (${FINISHED.map(() => '?').join(', ')})`,
      [id, ...FINISHED],
    );
    return (result.affected ?? 0) === 1;
  }

  findById(id: number): Promise<Job | null> {
    return this.dataSource.getRepository(Job).findOne({ where: { id } });
  }

  /** Puts a finished job back to ready for a fresh run (attempts reset). */
  async rerun(id: number): Promise<boolean> {
    const result = await this.statement(
      `UPDATE jobs SET state = 'ready', attempts = 0, last_error = NULL, run_after = ${this.sql.now},
         finished_at = NULL, started_at = NULL
       WHERE id = ? AND state IN (${FINISHED.map(() => '?').join(', ')})`,
      [id, ...FINISHED],
    );
    return (result.affected ?? 0) === 1;
  }

  /**
   * Cancels a job that has not finished. A running one is fenced off too: its
   * worker's next heartbeat fails and it stops.
   */
  async cancel(id: number, reason: string): Promise<boolean> {
    const result = await this.statement(
      `UPDATE jobs SET state = 'cancelled', last_error = ?, fence = fence + 1, running_key = NULL,
         lease_owner = NULL, lease_expires_at = NULL, finished_at = ${this.sql.now}
       WHERE id = ? AND state IN ('ready', 'blocked', 'running')`,
      [reason, id],
    );
    if ((result.affected ?? 0) === 1) await this.promoteNextFor(id);
    return (result.affected ?? 0) === 1;
  }

  /**
   * One statement with a structured result; the connection is always given
   * back. On its own (autocommit) a statement that hit a deadlock was rolled
   * back whole and is run again; inside a caller's transaction the caller
   * must retry the transaction, so the error is passed on.
   */
  private async statement(sql: string, params: unknown[] = [], manager?: EntityManager): Promise<QueryResult> {
    if (manager?.queryRunner) return manager.queryRunner.query(sql, params, true);
    const mysql = this.mysql;
    if (mysql) return this.retryConflicts(() => mysql.run(sql, params));
    return this.retryConflicts(async () => {
      const runner = this.dataSource.createQueryRunner();
      try {
        return await runner.query(sql, params, true);
      } finally {
        await runner.release();
      }
    });
  }

  private async rows<T>(sql: string, params: unknown[] = []): Promise<T[]> {
    return ((await this.statement(sql, params)).records ?? []) as T[];
  }

  private async inTransaction<T>(isolation: IsolationLevel, work: (runner: QueryRunner) => Promise<T>): Promise<T> {
    const runner = this.dataSource.createQueryRunner();
    await runner.connect();
    try {
      await runner.startTransaction(isolation);
      const result = await work(runner);
      await runner.commitTransaction();
      return result;
    } catch (error) {
      if (runner.isTransactionActive) await runner.rollbackTransaction();
      throw error;
    } finally {
      await runner.release();
    }
  }

  /** Deadlocks and lock wait timeouts roll the transaction back: run it again after a jittered pause. */
  private async retryConflicts<T>(work: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await work();
      } catch (error) {
        if (attempt >= MAX_CONFLICT_RETRIES || !this.sql.isRetryableConflict(error)) throw error;
        await new Promise((r) => setTimeout(r, 5 + Math.random() * 20 * attempt));
      }
    }
  }
}
