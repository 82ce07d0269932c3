import { afterEach, beforeEach, jest } from '@jest/globals';
import { LeaseHeartbeat, leaseTimings, type LeaseLoss } from './lease-heartbeat.js';

// The clock is Jest's (timers and Date): on a machine busy with the rest of the suite, 900 ms of real time held fewer timer turns than the test counts.
const sleep = (ms: number) => jest.advanceTimersByTimeAsync(ms);
beforeEach(() => {
  jest.useFakeTimers();
});
afterEach(() => {
  jest.useRealTimers();
});

/** A heartbeat on a 300 ms lease (renewed every 100 ms, retried after 20 ms) over a scripted catalog. */
function watch(answers: (call: number) => Promise<boolean>) {
  const losses: { why: LeaseLoss; at: number }[] = [];
  const failures: unknown[] = [];
  let calls = 0;
  const started = Date.now();
  const heartbeat = new LeaseHeartbeat(
    () => answers(++calls),
    (why) => losses.push({ why, at: Date.now() - started }),
    (error) => failures.push(error),
    leaseTimings(300),
    started,
  );
  heartbeat.start();
  return { heartbeat, losses, failures, calls: () => calls };
}

describe('LeaseHeartbeat', () => {
  it('renews every third of the lease, retries a failed renewal soon, and keeps the lease through a hiccup', async () => {
    expect(leaseTimings(15_000)).toEqual({ leaseMs: 15_000, renewEveryMs: 5_000, retryEveryMs: 1_000 });
    const hiccup = new Error('catalog: connection lost');
    const w = watch(async (call) => {
      if (call >= 2 && call <= 4) throw hiccup;
      return true;
    });
    await sleep(900);
    w.heartbeat.stop();
    expect(w.losses).toEqual([]);
    expect(w.failures).toEqual([hiccup, hiccup, hiccup]);
    // 100, 200 (fails), +20, +20 (fail), then 260, 360, ... about 8 renewals in 900 ms.
    expect(w.calls()).toBeGreaterThanOrEqual(7);
  });

  it('gives the lease up at once when the catalog says it is held no more', async () => {
    const w = watch(async () => false);
    await sleep(250);
    expect(w.losses.map((l) => l.why)).toEqual(['taken']);
    expect(w.calls()).toBe(1);
  });

  it('gives the lease up when no renewal got through for a whole lease, not before', async () => {
    const w = watch(async () => {
      throw new Error('catalog unreachable');
    });
    await sleep(200);
    expect(w.losses).toEqual([]);
    await sleep(250);
    expect(w.losses.map((l) => l.why)).toEqual(['unreachable']);
    expect(w.losses[0]!.at).toBeGreaterThanOrEqual(295);
    const calls = w.calls();
    await sleep(100);
    expect(w.calls()).toBe(calls);
  });

  it('gives the lease up when a renewal hangs past the lease', async () => {
    const w = watch(() => new Promise<boolean>(() => undefined));
    await sleep(400);
    expect(w.losses.map((l) => l.why)).toEqual(['unreachable']);
  });
});
