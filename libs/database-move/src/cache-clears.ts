import { posix } from 'node:path';
import { Injectable } from '@nestjs/common';
import type { Install, Server } from '@app/catalog';
import { checkServerPath, ServerAccess } from '@app/hosts';
import { homeOn } from '@app/installs';
import { ServerBatches } from './server-batches.js';

/** Each directory that is one (not a link) emptied, never crossing a file system; the ones find could not empty printed, NUL-ended. */
const EMPTY_DIRS = 'for d do if [ -d "$d" ] && [ ! -L "$d" ]; then find "$d" -xdev -mindepth 1 -delete || printf "%s\\0" "$d"; fi; done; exit 0';
/** Never aborted: a batch serves many sagas, and one of them stopping must not kill the others' command. */
const NEVER = new AbortController().signal;

/**
 * The manifest's cache directories of installs emptied (as emptyCaches
 * does for one), the installs of a server coalesced: one remote command for
 * the installs whose sagas reach their `caches` step within a few ms.
 */
@Injectable()
export class CacheClears {
  private readonly batches = new ServerBatches<string[]>((server, items) => this.clear(server, items), { delayMs: 5, maxItems: 100 });

  constructor(private readonly access: ServerAccess) {}

  async empty(server: Server, install: Install, paths: readonly string[]): Promise<void> {
    if (paths.length === 0) return;
    const dirs = paths.map((p) => checkServerPath(server, posix.join(homeOn(server, install), p), { allowRoot: false }));
    await this.batches.add(server, dirs);
  }

  private async clear(server: Server, items: readonly string[][]): Promise<(Error | null)[]> {
    const out = await this.access.executorFor(server).mustRun(server, ['sh', '-c', EMPTY_DIRS, 'clear', ...items.flat()], { signal: NEVER, timeoutMs: 120_000 });
    const failed = new Set(out.split('\0').filter(Boolean));
    return items.map((dirs) => {
      const left = dirs.filter((d) => failed.has(d));
      return left.length > 0 ? new Error(`${server.hostname}: could not empty ${left.join(', ')}`) : null;
    });
  }
}
