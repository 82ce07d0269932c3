import { AsyncLocalStorage } from 'node:async_hooks';

const scope = new AsyncLocalStorage<AbortSignal>();

/**
 * Runs `fn` with `signal` as the abort signal of everything it calls, across
 * awaits, timers and callbacks: a job's handler runs inside its job's signal,
 * and every server command it starts is killed when the job loses its lease,
 * without the signal being passed through each call. A scope opened inside
 * another is aborted by either signal.
 */
export function withAbortSignal<T>(signal: AbortSignal, fn: () => T): T {
  const outer = scope.getStore();
  return scope.run(outer && outer !== signal ? AbortSignal.any([outer, signal]) : signal, fn);
}

/** The abort signal of the scope the caller runs in (see withAbortSignal), if any. */
export function currentAbortSignal(): AbortSignal | undefined {
  return scope.getStore();
}
