import type { DataSource } from 'typeorm';

/**
 * The few SQL spellings that differ between the catalog's drivers. Time always
 * comes from the database clock (UTC), never from the workers' clocks, which
 * may disagree across machines.
 */
export interface SqlDialect {
  readonly kind: 'mysql' | 'sqlite';
  /** The database's current UTC time, millisecond precision. */
  readonly now: string;
  /** SQL for now + a parameter in milliseconds, and the parameter's value. */
  nowPlus(ms: number): { sql: string; param: number | string };
  /** Suffix of a claim's SELECT: row locks other claimers skip. */
  readonly skipLocked: string;
  isDuplicateKey(error: unknown): boolean;
  isRetryableConflict(error: unknown): boolean;
}

const driverError = (error: unknown) =>
  ((error as { driverError?: unknown })?.driverError ?? error) as { errno?: number; code?: string };

const MYSQL: SqlDialect = {
  kind: 'mysql',
  now: 'UTC_TIMESTAMP(3)',
  nowPlus: (ms) => ({ sql: 'TIMESTAMPADD(MICROSECOND, ? * 1000, UTC_TIMESTAMP(3))', param: Math.round(ms) }),
  skipLocked: 'FOR UPDATE SKIP LOCKED',
  isDuplicateKey: (e) => driverError(e).errno === 1062,
  // 1213 deadlock, 1205 lock wait timeout: the transaction was rolled back; run it again.
  isRetryableConflict: (e) => [1213, 1205].includes(driverError(e).errno ?? 0),
};

// TypeORM stores SQLite datetimes as 'YYYY-MM-DD HH:MM:SS.SSS' UTC text, the same
// format strftime('%f') gives, so comparisons stay string comparisons.
const SQLITE: SqlDialect = {
  kind: 'sqlite',
  now: "strftime('%Y-%m-%d %H:%M:%f', 'now')",
  nowPlus: (ms) => ({
    sql: "strftime('%Y-%m-%d %H:%M:%f', 'now', ?)",
    param: `${ms >= 0 ? '+' : '-'}${(Math.abs(ms) / 1000).toFixed(3)} seconds`,
  }),
  skipLocked: '',
  isDuplicateKey: (e) => /^SQLITE_CONSTRAINT/.test(driverError(e).code ?? ''),
  isRetryableConflict: (e) => driverError(e).code === 'SQLITE_BUSY',
};

export function sqlDialect(dataSource: DataSource): SqlDialect {
  return dataSource.options.type === 'better-sqlite3' ? SQLITE : MYSQL;
}
