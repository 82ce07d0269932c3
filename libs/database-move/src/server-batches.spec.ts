import type { Server } from '@app/catalog';
import { ServerBatches } from './server-batches.js';

const server = (id: number) => ({ id, hostname: `s${id}.example.net` }) as Server;
const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('ServerBatches', () => {
  it('sends what is handed in for a server within the delay as one batch, per server, and each caller gets its own outcome', async () => {
    const calls: string[] = [];
    const batches = new ServerBatches<number>(async (s, items) => {
      calls.push(`${s.id}:${items.join(',')}`);
      return items.map((n) => (n === 3 ? new Error(`item ${n} failed`) : null));
    }, { delayMs: 5, maxItems: 100 });
    const outcomes = await Promise.allSettled([batches.add(server(1), 1), batches.add(server(2), 2), batches.add(server(1), 3), batches.add(server(1), 4)]);
    expect(calls.sort()).toEqual(['1:1,3,4', '2:2']);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect((outcomes[2] as PromiseRejectedResult).reason.message).toBe('item 3 failed');
  });

  it('splits at maxItems, runs one batch per server at a time, and sends what came in meanwhile as the next one at once', async () => {
    const calls: number[][] = [];
    let running = 0;
    let most = 0;
    const batches = new ServerBatches<number>(async (_s, items) => {
      running++;
      most = Math.max(most, running);
      calls.push([...items]);
      await tick(30);
      running--;
      return items.map(() => null);
    }, { delayMs: 5, maxItems: 3 });
    const first = [1, 2, 3, 4, 5].map((n) => batches.add(server(1), n));
    await tick(10);
    const later = [6, 7].map((n) => batches.add(server(1), n));
    await Promise.all([...first, ...later]);
    expect(most).toBe(1);
    expect(calls).toEqual([[1, 2, 3], [4, 5, 6], [7]]);
  });

  it('a batch that throws fails each of its items, and the next batch still runs', async () => {
    let n = 0;
    const batches = new ServerBatches<string>(async (_s, items) => {
      if (n++ === 0) throw new Error('connection lost');
      return items.map(() => null);
    }, { delayMs: 1, maxItems: 10 });
    const failed = await Promise.allSettled([batches.add(server(1), 'a'), batches.add(server(1), 'b')]);
    expect(failed.map((o) => (o.status === 'rejected' ? o.reason.message : 'ok'))).toEqual(['connection lost', 'connection lost']);
    await expect(batches.add(server(1), 'c')).resolves.toBeUndefined();
  });
});
