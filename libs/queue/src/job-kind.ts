/** How the queue treats one kind of job. */
export interface JobKindOptions {
  /** Claims before the job ends dead (counted at claim, so crashes count too). */
  maxAttempts: number;
  /** Lease length; the worker renews it every third of this while the handler runs. */
  leaseMs: number;
  /** Retry delay: base * 2^(attempt-1), capped, with full jitter. */
  backoff: { baseMs: number; maxMs: number };
}

export const DEFAULT_JOB_KIND_OPTIONS: JobKindOptions = {
  maxAttempts: 5,
  leaseMs: 30_000,
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
