import type { SagaStep } from '@app/saga';

/**
 * What a step of a site operation gets: the payload the request queued and
 * the job's id. Everything else is read from the catalog by the step
 * itself, as it is at that moment (a step after a crash, or a
 * compensation, sees what the steps before it changed).
 */
export interface OperationContext<P> {
  payload: P;
  jobId: number;
}

export function operationContext<P>(payload: P, jobId: number): OperationContext<P> {
  return { payload, jobId };
}

/** A journaled step (its name is in the journal: never rename one in use). */
export function sagaStep<C>(name: string, execute: SagaStep<C>['execute'], compensate: SagaStep<C>['compensate']): SagaStep<C> {
  return { name, execute, compensate };
}
