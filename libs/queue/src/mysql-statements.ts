import { QueryFailedError, QueryResult, type DataSource } from 'typeorm';

/** A statement's structured result, as TypeORM's query runner gives it. */
export interface StatementRunner {
  run(sql: string, params: unknown[]): Promise<QueryResult>;
}

/** The callback API of a mysql2 connection or pool, the part used here. */
interface Mysql2Queryable {
  query(sql: string, values: unknown[], callback: (error: (Error & { fatal?: boolean }) | null, result: unknown) => void): unknown;
}

interface Mysql2PoolConnection extends Mysql2Queryable {
  destroy(): void;
  once(event: 'end' | 'error', listener: () => void): unknown;
}

interface MysqlDriverInternals {
  pool?: Mysql2Queryable & { getConnection: unknown };
  poolCluster?: unknown;
  obtainMasterConnection(): Promise<Mysql2PoolConnection>;
}

/** Claims run at once in one process (a worker claims one batch at a time; tests and benches run a few claimers). */
const MAX_CLAIM_SESSIONS = 4;

/**
 * The queue's hot path on MySQL/MariaDB, on the mysql2 pool TypeORM already
 * holds (so the catalog's settings and lifetime are the data source's: its
 * destroy ends these connections too), through mysql2's callback API: a
 * claim, its completion and a job's output are a few statements each, and
 * TypeORM's query runner per statement (a runner object, a pool round trip,
 * `connection.promise()` with a `require` inside it, the broadcaster)
 * cost the workers more CPU than the statements themselves.
 *
 * Claims run on connections set to READ COMMITTED for their session once,
 * held aside (never given back to the pool, whose other users keep the
 * server's default level), instead of a `SET TRANSACTION` before each claim.
 * Between claims they carry the process's autocommit statements too (see
 * `run`). Errors are TypeORM's `QueryFailedError`, as through a query runner.
 */
export class MysqlStatements implements StatementRunner {
  private readonly idleSessions: Mysql2PoolConnection[] = [];
  /** Held connections seen to close (server restart, idle timeout, KILL): dropped instead of used. */
  private readonly closed = new WeakSet<Mysql2PoolConnection>();
  private sessions = 0;

  private constructor(private readonly driver: MysqlDriverInternals & { pool: Mysql2Queryable }) {}

  /** Null unless the catalog is MySQL/MariaDB on a single pool (no replication cluster). */
  static of(dataSource: DataSource): MysqlStatements | null {
    if (dataSource.options.type !== 'mysql' && dataSource.options.type !== 'mariadb') return null;
    const driver = dataSource.driver as unknown as MysqlDriverInternals;
    if (driver.poolCluster || typeof driver.obtainMasterConnection !== 'function') return null;
    return new MysqlStatements(driver as MysqlDriverInternals & { pool: Mysql2Queryable });
  }

  /**
   * One autocommit statement: on a claim connection that is idle (a worker's
   * job output, completion and lease renewals go on the connection its
   * claim used, which waits meanwhile), else on a connection of the pool.
   * A pool round (getConnection, a tick, the release) cost a worker about
   * as much CPU as the statement's own round trip. READ COMMITTED does not
   * change what a single autocommit statement sees (its own snapshot
   * either way) and takes fewer gap locks.
   */
  run(sql: string, params: unknown[]): Promise<QueryResult> {
    const pool = this.driver.pool;
    // Not initialized yet (or destroyed): TypeORM's own message, as a runner would give.
    if (!pool) return Promise.reject(new QueryFailedError(sql, params, new Error('the catalog connection is not established')));
    const session = this.popIdle();
    if (!session) return send(pool, sql, params);
    return send(session, sql, params).then(
      (result) => {
        this.giveBack(session, false);
        return result;
      },
      (error: unknown) => {
        // The statement's error is the caller's (deadlocks are retried by it).
        this.giveBack(session, isFatal(error));
        throw error;
      },
    );
  }

  /**
   * `work` in one READ COMMITTED transaction on a held connection; rolled
   * back when it throws. A connection that broke (server restart, idle
   * timeout) is dropped, and the transaction, rolled back with it, is run
   * once more on a new one. Null when every session is busy: the caller
   * uses its own path.
   */
  async inClaimTransaction<T>(work: (statements: StatementRunner) => Promise<T>): Promise<T | null> {
    for (let attempt = 1; ; attempt++) {
      const session = await this.takeSession();
      if (!session) return null;
      const statements: StatementRunner = { run: (sql, params) => send(session, sql, params) };
      try {
        await statements.run('START TRANSACTION', []);
        const result = await work(statements);
        await statements.run('COMMIT', []);
        this.giveBack(session, false);
        return result;
      } catch (error) {
        this.giveBack(session, isFatal(error) || !(await rolledBack(statements)));
        if (attempt === 1 && isFatal(error)) continue;
        throw error;
      }
    }
  }

  /** A held connection back to the idle ones, or dropped when it broke. */
  private giveBack(session: Mysql2PoolConnection, broken: boolean): void {
    if (broken) this.drop(session);
    else this.idleSessions.push(session);
  }

  private drop(session: Mysql2PoolConnection): void {
    this.sessions--;
    session.destroy();
  }

  /** An idle held connection not seen to close, if any. */
  private popIdle(): Mysql2PoolConnection | undefined {
    for (let session = this.idleSessions.pop(); session; session = this.idleSessions.pop()) {
      if (!this.closed.has(session)) return session;
      this.drop(session);
    }
    return undefined;
  }

  private async takeSession(): Promise<Mysql2PoolConnection | null> {
    const idle = this.popIdle();
    if (idle) return idle;
    if (this.sessions >= MAX_CLAIM_SESSIONS || !this.driver.pool) return null;
    this.sessions++;
    try {
      const connection = await this.driver.obtainMasterConnection();
      connection.once('end', () => this.closed.add(connection));
      connection.once('error', () => this.closed.add(connection));
      try {
        await send(connection, 'SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED', []);
      } catch (error) {
        connection.destroy();
        throw error;
      }
      return connection;
    } catch (error) {
      this.sessions--;
      throw error;
    }
  }
}

function send(target: Mysql2Queryable, sql: string, params: unknown[]): Promise<QueryResult> {
  return new Promise((resolve, reject) => {
    target.query(sql, params, (error, raw) => {
      if (error) return reject(new QueryFailedError(sql, params, error));
      const result = new QueryResult();
      result.raw = raw;
      if (Array.isArray(raw)) result.records = raw;
      else if (raw && typeof raw === 'object' && 'affectedRows' in raw) result.affected = (raw as { affectedRows: number }).affectedRows;
      resolve(result);
    });
  });
}

const isFatal = (error: unknown) => ((error as { driverError?: { fatal?: boolean } }).driverError?.fatal ?? false) === true;

async function rolledBack(statements: StatementRunner): Promise<boolean> {
  try {
    await statements.run('ROLLBACK', []);
    return true;
  } catch {
    return false;
  }
}
