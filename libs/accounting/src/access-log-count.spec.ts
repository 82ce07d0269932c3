import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { COUNT_SCRIPT, mergeCounts, parseCount } from './access-log-count.js';

const MONTHS: Record<string, number> = { Jan: 0, Feb: 1, Mar: 2, Apr: 3, May: 4, Jun: 5, Jul: 6, Aug: 7, Sep: 8, Oct: 9, Nov: 10, Dec: 11 };

/** The reference for the counter's utc_day: `dd/Mon/yyyy:HH` and `+zzzz` to the UTC day of that hour's start, by Date's arithmetic, or null. */
function utcDay(stampHour: string, zone: string): string | null {
  const m = /^(\d\d)\/(\w{3})\/(\d{4}):(\d\d)$/.exec(stampHour);
  const z = /^([+-])(\d\d)(\d\d)$/.exec(zone);
  const month = m ? MONTHS[m[2]!] : undefined;
  if (!m || !z || month === undefined) return null;
  const offsetMin = (z[1] === '-' ? -1 : 1) * (Number(z[2]) * 60 + Number(z[3]));
  return new Date(Date.UTC(Number(m[3]), month, Number(m[1]), Number(m[4])) - offsetMin * 60_000).toISOString().slice(0, 10);
}

const line = (host: string, time: string, request: string, status: number, bytes: number) => `${host} 203.0.113.7 [${time}] "${request}" ${status} ${bytes}\n`;

describe('counting an access log in the shop_host format (the Perl counter, run here)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'log-count-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'access.log');
  const run = (from: number, to: number, end: number) => parseCount(execFileSync('perl', ['-e', COUNT_SCRIPT, file, String(from), String(to), String(end)], { encoding: 'utf8' }));
  const count = (text: string, start = 0, end = Buffer.byteLength(text)) => {
    writeFileSync(file, text);
    return run(start, end, end);
  };
  const sorted = (u: { host: string; day: string }[]) => [...u].sort((x, y) => `${x.host} ${x.day}`.localeCompare(`${y.host} ${y.day}`));

  it('counts hits and bytes per host and UTC day, whatever the request holds', () => {
    const c = count(
      line('a.example', '03/Dec/2026:10:00:00 +0000', 'GET / HTTP/1.1', 200, 512) +
        line('a.example', '03/Dec/2026:23:59:59 +0000', 'GET /a b "c" ] [x] HTTP/1.1', 404, 0) +
        line('b.example', '03/Dec/2026:01:30:00 +0200', 'POST /x HTTP/1.1', 200, 10) +
        line('b.example', '02/Dec/2026:22:00:00 -0300', 'GET / HTTP/1.0', 301, 7),
    );
    expect(sorted(c.usage)).toEqual([
      { host: 'a.example', day: '2026-12-03', hits: 2, bytes: 512 },
      { host: 'b.example', day: '2026-12-02', hits: 1, bytes: 10 },
      { host: 'b.example', day: '2026-12-03', hits: 1, bytes: 7 },
    ]);
    expect(c).toMatchObject({ lines: 4, malformed: 0, first: 0 });
    expect(c.peakKib).toBeGreaterThan(0);
  });

  it('counts only whole lines inside the range: a line cut by the writer or by the end waits', () => {
    const one = line('a.example', '03/Dec/2026:10:00:00 +0000', 'GET / HTTP/1.1', 200, 123456);
    const text = one.repeat(50);
    const cut = count(text.slice(0, text.length - 5));
    expect(cut).toMatchObject({ lines: 49, first: 0, stop: one.length * 49 });
    const bounded = count(text, one.length * 10, one.length * 20 + 3);
    expect(bounded).toMatchObject({ lines: 10, first: one.length * 10, stop: one.length * 20 });
    expect(bounded.usage).toEqual([{ host: 'a.example', day: '2026-12-03', hits: 10, bytes: 1234560 }]);
  });

  it('splits a range into pieces counted apart: each line in exactly one, the pieces meeting', () => {
    const lines = Array.from({ length: 300 }, (_, i) => line(`h${i % 7}.example`, `03/Dec/2026:${String(i % 24).padStart(2, '0')}:00:00 +0000`, `GET /${'x'.repeat(i % 50)} HTTP/1.1`, 200, i));
    const text = lines.join('');
    const size = Buffer.byteLength(text);
    const whole = count(text);
    for (const cuts of [[1000], [1, 2, 3], [size - 1], [137, 5000, 9999, size - 10]]) {
      const bounds = [0, ...cuts, size];
      const pieces = bounds.slice(0, -1).map((from, i) => run(from, bounds[i + 1]!, size));
      pieces.forEach((p, i) => pieces[i + 1] && expect(p.stop).toBe(pieces[i + 1]!.first));
      const merged = mergeCounts(pieces);
      expect({ lines: merged.lines, stop: merged.stop }).toEqual({ lines: 300, stop: size });
      const order = (u: { host: string; day: string }[]) => [...u].sort((x, y) => `${x.host} ${x.day}`.localeCompare(`${y.host} ${y.day}`));
      expect(order(merged.usage)).toEqual(order(whole.usage));
    }
  });

  it('skips lines that are not in the format, and counts them', () => {
    const c = count('garbage\n\n' + 'a.example 1.2.3.4 [03/Dec/2026:10:00:00 +0000] "GET /" 200 -\n' + 'a.example 1.2.3.4 [bad date here........] "GET /" 200 5\n' + line('a.example', '03/Dec/2026:10:00:00 +0000', 'GET /', 200, 5));
    expect(c.usage).toEqual([{ host: 'a.example', day: '2026-12-03', hits: 1, bytes: 5 }]);
    expect(c.malformed).toBe(4);
  });

  it('places every hour and zone in the UTC day utcDay gives (the counter does it on the dispatcher)', () => {
    const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
    const zones = ['+0000', '+0200', '-0300', '+0530', '-0945', '+1400', '-1200'];
    const stamps: [string, string][] = [];
    for (const year of [1999, 2000, 2024, 2026, 2100]) {
      for (const [i, month] of months.entries()) {
        for (const d of ['01', '28', '29', '31']) {
          for (const hour of ['00', '01', '12', '22', '23']) stamps.push([`${d}/${month}/${year}:${hour}`, zones[(i + Number(hour)) % zones.length]!]);
        }
      }
    }
    const text = stamps.map(([stamp, zone], i) => line(`h${i}.example`, `${stamp}:30:00 ${zone}`, 'GET /', 200, 1)).join('');
    const c = count(text);
    expect(c.malformed).toBe(0);
    const got = new Map(c.usage.map((u) => [u.host, u.day]));
    const wrong = stamps.filter(([stamp, zone], i) => got.get(`h${i}.example`) !== utcDay(stamp, zone));
    expect(wrong).toEqual([]);
  });

  it('places an hour and its zone in its UTC day', () => {
    expect(utcDay('03/Dec/2026:01', '+0200')).toBe('2026-12-02');
    expect(utcDay('31/Dec/2026:22', '-0300')).toBe('2027-01-01');
    expect(utcDay('03/Dec/2026:10', '+0000')).toBe('2026-12-03');
    expect(utcDay('03/Foo/2026:10', '+0000')).toBeNull();
    expect(utcDay('03/Dec/2026:10', 'UTC')).toBeNull();
  });
});
