import { fork, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mysql from 'mysql2/promise';

/**
 * The queue's claim-and-complete protocol as plain SQL over mysql2, with no
 * engine code: the baseline the queue bench measures the engine against,
 * on the same MariaDB and the same `jobs` table. The statements are those
 * JobRepository issues on MySQL/MariaDB (libs/queue/src/job.repository.ts,
 * sql-dialect.ts), on the text protocol as TypeORM sends them:
 *
 * claim, in one READ COMMITTED transaction (set once per connection, as
 * the engine's claim sessions do since issue 20; before, it sent a
 * SET TRANSACTION before each claim):
 *   SELECT ... FROM jobs FORCE INDEX (ix_jobs_claim)
 *     WHERE state = 'ready' AND run_after <= now
 *     ORDER BY priority, run_after, id LIMIT n FOR UPDATE SKIP LOCKED
 *   keyless jobs: one UPDATE to running (lease owner and expiry, fence + 1,
 *     attempts + 1, started_at) for the lot;
 *   keyed jobs: one UPDATE each that also sets running_key (unique): a
 *     duplicate key marks the job blocked instead;
 *   COMMIT
 * complete, autocommit:
 *   UPDATE jobs SET state = 'done', ... WHERE id = ? AND fence = ? AND state = 'running'
 *   and, for a keyed job, the oldest job blocked on its key becomes ready.
 * Deadlocks and lock wait timeouts run the claim again, as the engine does.
 *
 * With `engineStatements`, it also sends the statement a worker adds per
 * no-op job: the INSERT of the job's output line into job_logs (the no-op
 * handler says "noop"), so the baseline does the same work as the engine.
 */

export interface RawClaimOptions {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

const NOW = 'UTC_TIMESTAMP(3)';
const NOW_PLUS = 'TIMESTAMPADD(MICROSECOND, ? * 1000, UTC_TIMESTAMP(3))';
const LEASE_MS = 15_000;

interface Row {
  id: number;
  kind: string;
  payload: string;
  attempts: number;
  max_attempts: number;
  fence: number;
  resource_key: string | null;
}

const errno = (error: unknown) => (error as { errno?: number }).errno ?? 0;

export class RawClaimers {
  private constructor(
    private readonly connections: mysql.Connection[],
    private readonly engineStatements: boolean,
  ) {}

  /** `count` connections, each READ COMMITTED for its session. */
  static async open(options: RawClaimOptions, count: number, engineStatements = false): Promise<RawClaimers> {
    const connections = await Promise.all(
      Array.from({ length: count }, () => mysql.createConnection({ ...options, dateStrings: false, supportBigNumbers: true })),
    );
    for (const c of connections) await c.query('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED');
    return new RawClaimers(connections, engineStatements);
  }

  async close(): Promise<void> {
    await Promise.all(this.connections.map((c) => c.end()));
  }

  /**
   * Every connection claims up to `limit` jobs at a time and completes them,
   * until no ready job is left. Returns the number of jobs completed.
   */
  async drain(limit: number): Promise<number> {
    const counts = await Promise.all(this.connections.map((c, i) => this.loop(c, `raw-${i}`, limit)));
    return counts.reduce((a, b) => a + b, 0);
  }

  private async loop(c: mysql.Connection, owner: string, limit: number): Promise<number> {
    let done = 0;
    for (;;) {
      const claimed = await this.claim(c, owner, limit);
      if (claimed.length === 0) {
        // SKIP LOCKED passes over rows other claimers hold: stop only when none is ready.
        const [rest] = await c.query<mysql.RowDataPacket[]>(`SELECT 1 FROM jobs WHERE state = 'ready' LIMIT 1`);
        if (rest.length === 0) return done;
        continue;
      }
      for (const job of claimed) {
        if (this.engineStatements) {
          await c.query(`INSERT INTO job_logs (job_id, attempt, level, line) VALUES (?, ?, 'info', 'noop')`, [job.id, Number(job.attempts) + 1]);
        }
        if (await this.complete(c, job.id, Number(job.fence) + 1, job.resource_key)) done++;
      }
    }
  }

  private async claim(c: mysql.Connection, owner: string, limit: number): Promise<Row[]> {
    for (let attempt = 1; ; attempt++) {
      try {
        await c.query('START TRANSACTION');
        try {
          const [candidates] = await c.query<(Row & mysql.RowDataPacket)[]>(
            `SELECT id, kind, payload, attempts, max_attempts, fence, resource_key FROM jobs FORCE INDEX (ix_jobs_claim)
             WHERE state = 'ready' AND run_after <= ${NOW}
             ORDER BY priority, run_after, id LIMIT ? FOR UPDATE SKIP LOCKED`,
            [limit],
          );
          const free = candidates.filter((r) => r.resource_key === null);
          const claimed: Row[] = [];
          if (free.length > 0) {
            await c.query(
              `UPDATE jobs SET state = 'running', lease_owner = ?, lease_expires_at = ${NOW_PLUS},
                 fence = fence + 1, attempts = attempts + 1, started_at = ${NOW}, finished_at = NULL
               WHERE id IN (${free.map(() => '?').join(', ')})`,
              [owner, LEASE_MS, ...free.map((r) => r.id)],
            );
            claimed.push(...free);
          }
          for (const keyed of candidates.filter((r) => r.resource_key !== null)) {
            try {
              const [result] = await c.query<mysql.ResultSetHeader>(
                `UPDATE jobs SET state = 'running', running_key = resource_key, lease_owner = ?,
                   lease_expires_at = ${NOW_PLUS}, fence = fence + 1, attempts = attempts + 1,
                   started_at = ${NOW}, finished_at = NULL
                 WHERE id = ? AND state = 'ready'`,
                [owner, LEASE_MS, keyed.id],
              );
              if (result.affectedRows === 1) claimed.push(keyed);
            } catch (error) {
              if (errno(error) !== 1062) throw error;
              await c.query(`UPDATE jobs SET state = 'blocked' WHERE id = ? AND state = 'ready'`, [keyed.id]);
            }
          }
          await c.query('COMMIT');
          // Back in queue order, as the engine returns them.
          const order = new Map(candidates.map((r, i) => [r.id, i]));
          return claimed.sort((a, b) => order.get(a.id)! - order.get(b.id)!);
        } catch (error) {
          await c.query('ROLLBACK');
          throw error;
        }
      } catch (error) {
        if (attempt >= 5 || ![1213, 1205].includes(errno(error))) throw error;
        await new Promise((r) => setTimeout(r, 5 + Math.random() * 20 * attempt));
      }
    }
  }

  private async complete(c: mysql.Connection, id: number, fence: number, resourceKey: string | null): Promise<boolean> {
    const [result] = await c.query<mysql.ResultSetHeader>(
      `UPDATE jobs SET state = 'done', last_error = NULL, running_key = NULL, lease_owner = NULL,
         lease_expires_at = NULL, finished_at = ${NOW}
       WHERE id = ? AND fence = ? AND state = 'running'`,
      [id, fence],
    );
    const done = result.affectedRows === 1;
    if (done && resourceKey !== null) {
      await c.query(
        `UPDATE jobs SET state = 'ready' WHERE state = 'blocked' AND id = (
           SELECT id FROM (SELECT id FROM jobs WHERE state = 'blocked' AND resource_key = ?
                           ORDER BY priority, run_after, id LIMIT 1) AS next_job)`,
        [resourceKey],
      );
    }
    return done;
  }
}

/**
 * The same claimers, each in a process of its own with one connection (the
 * engine's workers are separate processes): `drain` tells them all to
 * start and sums what they completed.
 */
export class RawClaimerProcesses {
  private constructor(private readonly children: ChildProcess[]) {}

  static async open(options: RawClaimOptions, count: number, engineStatements = false): Promise<RawClaimerProcesses> {
    const script = join(dirname(fileURLToPath(import.meta.url)), 'raw-claim-process.js');
    const children = Array.from({ length: count }, () =>
      fork(script, [], { env: { ...process.env, RAW_CLAIM_OPTIONS: JSON.stringify({ ...options, engineStatements }) }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }),
    );
    await Promise.all(children.map((child) => nextMessage(child)));
    return new RawClaimerProcesses(children);
  }

  get pids(): number[] {
    return this.children.map((c) => c.pid!);
  }

  async drain(limit: number): Promise<number> {
    const answers = this.children.map((child) => nextMessage(child));
    for (const child of this.children) child.send({ drain: limit });
    const counts = (await Promise.all(answers)) as { done?: number; error?: string }[];
    const failed = counts.find((c) => c.error);
    if (failed) throw new Error(`a raw claimer process failed: ${failed.error}`);
    return counts.reduce((a, c) => a + (c.done ?? 0), 0);
  }

  async close(): Promise<void> {
    await Promise.all(
      this.children.map((child) => {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.send({ close: true });
        return exited;
      }),
    );
  }
}

function nextMessage(child: ChildProcess): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`a raw claimer process exited (${code})`));
    child.once('exit', onExit);
    child.once('message', (message) => {
      child.off('exit', onExit);
      resolve(message);
    });
  });
}
