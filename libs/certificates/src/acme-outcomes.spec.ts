import { ACME_BACKOFF_MS, backoffAfter, nextRenewal } from './acme-outcomes.service.js';

describe('ACME timing', () => {
  const now = new Date('2026-12-03T10:00:00Z');
  const day = 86_400_000;

  it('renews renewDays before expiry, up to a day earlier (jitter), never sooner than an hour from now', () => {
    const notAfter = new Date(now.getTime() + 90 * day);
    expect(nextRenewal(notAfter, 21, now, () => 0).toISOString()).toBe(new Date(notAfter.getTime() - 21 * day).toISOString());
    expect(nextRenewal(notAfter, 21, now, () => 0.999_999).getTime()).toBeGreaterThan(notAfter.getTime() - 22 * day);
    expect(nextRenewal(notAfter, 21, now, () => 0.5).getTime()).toBe(notAfter.getTime() - 21 * day - 12 * 3_600_000);
    // A certificate valid for less than the window: an hour from now, not a renewal loop.
    expect(nextRenewal(new Date(now.getTime() + 10 * day), 21, now, () => 0).getTime()).toBe(now.getTime() + 3_600_000);
  });

  it('backs off 1 h, 4 h, 12 h, then 24 h after each failure in a row', () => {
    expect([1, 2, 3, 4, 5, 12].map(backoffAfter)).toEqual([...ACME_BACKOFF_MS, ACME_BACKOFF_MS[3], ACME_BACKOFF_MS[3]]);
    expect(ACME_BACKOFF_MS.map((ms) => ms / 3_600_000)).toEqual([1, 4, 12, 24]);
  });
});
