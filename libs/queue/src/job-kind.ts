/** How the queue treats one kind of job. */
export interface JobKindOptions {
  /** Claims before the job ends dead (counted at claim, so crashes count too). */
  maxAttempts: number;
  /**
   * Lease length, at most MAX_LEASE_MS: the worker renews it every third of
   * this while the handler runs, so a job that runs for minutes keeps it and
   * a dead holder is noticed in seconds. Shorter only in tests.
   */
  leaseMs: number;
  /** Retry delay: base * 2^(attempt-1), capped, with full jitter. */
  backoff: { baseMs: number; maxMs: number };
}

/** Every kind's lease: a dead holder's jobs are taken back within this (and at once on its own host). */
export const MAX_LEASE_MS = 15_000;

export const DEFAULT_JOB_KIND_OPTIONS: JobKindOptions = {
  maxAttempts: 5,
  leaseMs: MAX_LEASE_MS,
  backoff: { baseMs: 1_000, maxMs: 5 * 60_000 },
};

export interface JobKind<P extends object = Record<string, unknown>> {
  readonly name: string;
  readonly options: JobKindOptions;
  /** Type carrier for the payload; never set at run time. */
  readonly payload?: P;
}

const KIND_NAME = /^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)*$/;
const declared = new Map<string, JobKind<object>>();

/**
 * Declares a job kind. Every declared kind must have exactly one handler in a
 * worker: the worker refuses to boot otherwise.
 */
export function defineJobKind<P extends object>(name: string, options: Partial<JobKindOptions> = {}): JobKind<P> {
  if (!KIND_NAME.test(name) || name.length > 64) throw new Error(`job kind "${name}" must be dotted lower-case words`);
  if (declared.has(name)) throw new Error(`job kind "${name}" is declared twice`);
  if (options.leaseMs !== undefined && !(options.leaseMs > 0 && options.leaseMs <= MAX_LEASE_MS)) {
    throw new Error(`job kind "${name}": leaseMs must be at most ${MAX_LEASE_MS} (the heartbeat keeps a long job's lease)`);
  }
  const kind: JobKind<P> = {
    name,
    options: { ...DEFAULT_JOB_KIND_OPTIONS, ...options, backoff: { ...DEFAULT_JOB_KIND_OPTIONS.backoff, ...options.backoff } },
  };
  declared.set(name, kind);
  return kind;
}

export function declaredJobKinds(): JobKind<object>[] {
  return [...declared.values()];
}

export function declaredJobKind(name: string): JobKind<object> | undefined {
  return declared.get(name);
}
