/** What a step may print; kept in the job's output and the step's journal row. */
export interface StepIO {
  log(line: string): void;
  readonly signal: AbortSignal;
}

/**
 * One step of a saga. Both methods are idempotent: `execute` may run again
 * after a crash left its outcome unknown; `compensate` tolerates "never ran"
 * and "half ran".
 */
export interface SagaStep<C> {
  /** Journaled: never rename a step of a saga in use. */
  readonly name: string;
  /**
   * The earlier steps this one needs done before it starts; without it, the
   * step before it in the list. Steps whose needs are met run at the same
   * time, each journaled on its own (one after the other on a SQLite
   * catalog, whose one connection would mix their transactions). Undone in
   * reverse list order, so a step is undone before the ones it needed.
   */
  readonly after?: readonly string[];
  execute(context: C, io: StepIO): Promise<void>;
  compensate(context: C, io: StepIO): Promise<void>;
}

export interface SagaDefinition<C, P extends object = Record<string, unknown>> {
  readonly name: string;
  readonly steps: readonly SagaStep<C>[];
  /**
   * Name of the pivot step: it and every step after it are never compensated
   * (the customer was mailed); they are retried forward instead.
   */
  readonly pivot?: string;
  /**
   * Delays between tries of a failing step within one run; its length + 1 is
   * the tries. An error with `permanent: true` is not tried again.
   */
  readonly stepRetryDelaysMs?: readonly number[];
  /** Rebuilds the context from the catalog: nothing is carried in memory across steps or crashes. */
  loadContext(payload: P): Promise<C>;
  /** Called once every step is done. */
  onCompleted?(context: C): Promise<void>;
  /** Called once every step that ran is compensated. */
  onCompensated?(context: C, failure: string): Promise<void>;
}

export const DEFAULT_STEP_RETRY_DELAYS_MS = [1_000, 5_000] as const;
