import type { JobKindOptions } from './job-kind.js';

/**
 * Delay before retry number `attempt` (1 after the first failure):
 * exponential, capped, with "equal jitter" (half fixed, half random) so a burst of failures does not
 * retry in lockstep. `random` is injectable for tests.
 */
export function retryDelayMs(
  attempt: number,
  backoff: JobKindOptions['backoff'],
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(backoff.maxMs, backoff.baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
