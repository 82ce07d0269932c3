import { TaskSchedule } from './schedule.js';

describe('task schedules', () => {
  const at = (iso: string) => new Date(iso);

  it('ticks an interval at its multiples since the epoch, the same on every engine', () => {
    const s = new TaskSchedule({ everyMs: 10_000 });
    expect(s.latestTick(at('2026-12-03T10:00:05.300Z')).toISOString()).toBe('2026-12-03T10:00:00.000Z');
    expect(s.latestTick(at('2026-12-03T10:00:10.000Z')).toISOString()).toBe('2026-12-03T10:00:10.000Z');
    expect(s.nextTick(at('2026-12-03T10:00:10.000Z')).toISOString()).toBe('2026-12-03T10:00:20.000Z');
    expect(s.intervalMs()).toBe(10_000);
    expect(s.describe()).toBe('every 10 s');
  });

  it('ticks a cron expression in UTC, its own second included', () => {
    const s = new TaskSchedule({ schedule: '*/10 * * * * *' });
    expect(s.latestTick(at('2026-12-03T10:00:05.300Z')).toISOString()).toBe('2026-12-03T10:00:00.000Z');
    expect(s.latestTick(at('2026-12-03T10:00:10.000Z')).toISOString()).toBe('2026-12-03T10:00:10.000Z');
    expect(s.latestTick(at('2026-12-03T10:00:10.999Z')).toISOString()).toBe('2026-12-03T10:00:10.000Z');
    const daily = new TaskSchedule({ schedule: '0 3 * * *' });
    expect(daily.latestTick(at('2026-12-03T10:00:00Z')).toISOString()).toBe('2026-12-03T03:00:00.000Z');
    expect(daily.latestTick(at('2026-12-03T02:59:59Z')).toISOString()).toBe('2026-12-02T03:00:00.000Z');
    expect(daily.nextTick(at('2026-12-03T03:00:00Z')).toISOString()).toBe('2026-12-04T03:00:00.000Z');
    expect(daily.intervalMs()).toBe(24 * 60 * 60_000);
  });

  it('after a long stop, the latest tick is one tick: missed ones are not queued one by one', () => {
    const s = new TaskSchedule({ schedule: '*/5 * * * *' });
    expect(s.latestTick(at('2026-12-03T13:47:12Z')).toISOString()).toBe('2026-12-03T13:45:00.000Z');
  });

  it('refuses a schedule it cannot read', () => {
    expect(() => new TaskSchedule({ schedule: 'every tuesday' })).toThrow(/cron expression "every tuesday"/);
    expect(() => new TaskSchedule({ everyMs: 10 })).toThrow(/at least 1000/);
  });
});
