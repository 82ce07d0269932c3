import type { Server } from '@app/catalog';

/** One batch's outcome: per item its own failure or null (in order); a throw fails every item of the batch. */
export type BatchRun<T> = (server: Server, items: readonly T[]) => Promise<(Error | null)[]>;

interface Waiting<T> {
  item: T;
  done: (error: Error | null) => void;
}

/**
 * Coalesces work for servers: the items handed in for a server within
 * `delayMs` of the first go to it in one call (at most `maxItems`), so many
 * installs' sagas cost one remote command instead of one each. One batch
 * per server at a time: what comes in while one runs is the next batch,
 * sent as soon as it ends. Each caller waits for its own item's outcome; a
 * batch that fails as a whole fails each of its items.
 */
export class ServerBatches<T> {
  private readonly servers = new Map<number, { server: Server; queue: Waiting<T>[]; timer: NodeJS.Timeout | null; busy: boolean }>();

  constructor(
    private readonly run: BatchRun<T>,
    private readonly options: { delayMs: number; maxItems: number },
  ) {}

  /** Resolves once the batch holding the item ran and the item succeeded; rejects with the item's failure. */
  add(server: Server, item: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let state = this.servers.get(server.id);
      if (!state) {
        state = { server, queue: [], timer: null, busy: false };
        this.servers.set(server.id, state);
      }
      state.server = server;
      state.queue.push({ item, done: (e) => (e ? reject(e) : resolve()) });
      if (state.busy) return;
      if (state.queue.length >= this.options.maxItems) this.send(server.id);
      else state.timer ??= setTimeout(() => this.send(server.id), this.options.delayMs);
    });
  }

  private send(serverId: number): void {
    const state = this.servers.get(serverId);
    if (!state) return;
    if (state.timer) clearTimeout(state.timer);
    state.timer = null;
    if (state.busy || state.queue.length === 0) return;
    state.busy = true;
    const batch = state.queue.splice(0, this.options.maxItems);
    void (async () => {
      let outcomes: (Error | null)[];
      try {
        outcomes = await this.run(state.server, batch.map((w) => w.item));
      } catch (e) {
        const error = e instanceof Error ? e : new Error(String(e));
        outcomes = batch.map(() => error);
      }
      batch.forEach((w, n) => w.done(outcomes[n] ?? null));
    })().finally(() => {
      state.busy = false;
      // What came in meanwhile has waited a batch's time already: it goes at once.
      if (state.queue.length > 0) this.send(serverId);
      else this.servers.delete(serverId);
    });
  }
}
