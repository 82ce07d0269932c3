import { retryDelayMs } from './backoff.js';

describe('retryDelayMs', () => {
  const backoff = { baseMs: 1000, maxMs: 60_000 };

  it('doubles per attempt, between half and all of the ceiling', () => {
    expect(retryDelayMs(1, backoff, () => 0)).toBe(500);
    expect(retryDelayMs(1, backoff, () => 1)).toBe(1000);
    expect(retryDelayMs(3, backoff, () => 0)).toBe(2000);
    expect(retryDelayMs(3, backoff, () => 1)).toBe(4000);
  });

  it('is capped', () => {
    expect(retryDelayMs(30, backoff, () => 1)).toBe(60_000);
    expect(retryDelayMs(30, backoff, () => 0)).toBe(30_000);
  });

  it('spreads retries (jitter)', () => {
    const delays = new Set(Array.from({ length: 50 }, () => retryDelayMs(4, backoff)));
    expect(delays.size).toBeGreaterThan(10);
    for (const d of delays) expect(d).toBeGreaterThanOrEqual(4000);
  });
});
