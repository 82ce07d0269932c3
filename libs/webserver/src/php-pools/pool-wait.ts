import type { Server } from '@app/catalog';
import { JobDeferredError } from '@app/queue';
import type { PoolRebuilds } from './pool-rebuilds.service.js';

/** How long a step waits for pools within one run before it defers its job (and frees the worker slot), as the webserver step does for nginx. */
export const POOL_WAIT_IN_RUN_MS = 5_000;
/** When a deferred wait looks again. */
export const POOL_RECHECK_MS = 1_000;

/**
 * Waits until each handler's php-fpm runs the install's pool as the catalog
 * has it now; asks for the rebuild of the handlers whose pool is not yet
 * (once per run, coalesced with every other request). A quarantined pool
 * fails permanently (its reason names what php-fpm refused); a handler
 * whose rebuild gave up fails; past the bound the job is deferred (no
 * attempt used) and looks again.
 */
export async function awaitPools(pools: PoolRebuilds, install: { id: number; fsName: string }, handlers: readonly Server[], log: (line: string) => void): Promise<void> {
  if (handlers.length === 0) return;
  const deadline = Date.now() + POOL_WAIT_IN_RUN_MS;
  const live = new Set<number>();
  /** Per handler, its progress mark when its pool was last compared (rendering and reading it costs queries and a round trip): looked at again once it moves. */
  const compared = new Map<number, string>();
  for (let round = 0; ; round++) {
    const waiting: Server[] = [];
    const marks = await pools.progressMarks(handlers.filter((s) => !live.has(s.id)).map((s) => s.id));
    for (const server of handlers.filter((s) => !live.has(s.id))) {
      const mark = marks.get(server.id);
      if (mark !== undefined && compared.get(server.id) === mark) {
        waiting.push(server);
        continue;
      }
      const pool = await pools.poolState(install.id, server.id);
      if (mark !== undefined) compared.set(server.id, mark);
      if (pool.state === 'live') live.add(server.id);
      else if (pool.state === 'quarantined') throw Object.assign(new Error(`the php-fpm pool of ${install.fsName} on ${server.hostname} was refused: ${pool.reason}`), { permanent: true });
      else if (pool.state === 'failed') throw new Error(pool.reason);
      else if (pool.state === 'not-served') throw new Error(`${server.hostname} does not run install ${install.id}'s PHP`);
      else waiting.push(server);
    }
    if (waiting.length === 0) {
      log(`php-fpm pool of ${install.fsName} live on ${handlers.map((s) => s.hostname).join(', ')}`);
      return;
    }
    if (round === 0) await pools.request(waiting.map((s) => s.id));
    if (Date.now() > deadline) throw new JobDeferredError(`waiting for the php-fpm pool rebuild of ${waiting.map((s) => s.hostname).join(', ')}`, POOL_RECHECK_MS);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
