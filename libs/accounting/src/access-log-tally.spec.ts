import { AccessLogTally } from './access-log-tally.js';

const line = (host: string, time: string, request: string, status: number, bytes: number) => `${host} 203.0.113.7 [${time}] "${request}" ${status} ${bytes}\n`;

describe('counting an access log in the shop_host format', () => {
  it('counts hits and bytes per host and UTC day, whatever the request holds', () => {
    const t = new AccessLogTally();
    t.feed(
      Buffer.from(
        line('a.example', '03/Dec/2026:10:00:00 +0000', 'GET / HTTP/1.1', 200, 512) +
          line('a.example', '03/Dec/2026:23:59:59 +0000', 'GET /a b "c" HTTP/1.1', 404, 0) +
          line('b.example', '03/Dec/2026:01:30:00 +0200', 'POST /x HTTP/1.1', 200, 10) +
          line('b.example', '02/Dec/2026:22:00:00 -0300', 'GET / HTTP/1.0', 301, 7),
      ),
    );
    expect(t.usage().sort((x, y) => (x.host + x.day).localeCompare(y.host + y.day))).toEqual([
      { host: 'a.example', day: '2026-12-03', hits: 2, bytes: 512 },
      { host: 'b.example', day: '2026-12-02', hits: 1, bytes: 10 },
      { host: 'b.example', day: '2026-12-03', hits: 1, bytes: 7 },
    ]);
    expect(t.malformed).toBe(0);
    expect(t.lines).toBe(4);
  });

  it('counts a line only once it is whole, across chunks cut anywhere', () => {
    const text = Buffer.from(line('a.example', '03/Dec/2026:10:00:00 +0000', 'GET / HTTP/1.1', 200, 123456).repeat(50));
    for (const size of [1, 7, 64, 100, 1000]) {
      const t = new AccessLogTally();
      for (let i = 0; i < text.length; i += size) t.feed(text.subarray(i, i + size));
      expect(t.usage()).toEqual([{ host: 'a.example', day: '2026-12-03', hits: 50, bytes: 50 * 123456 }]);
      expect(t.consumed).toBe(text.length);
      expect(t.pending).toBe(0);
    }
    const t = new AccessLogTally();
    t.feed(text.subarray(0, text.length - 5));
    expect(t.usage()[0]!.hits).toBe(49);
    expect(t.consumed).toBe((text.length / 50) * 49);
    expect(t.pending).toBe(text.length / 50 - 5);
  });

  it('skips lines that are not in the format, and counts them', () => {
    const t = new AccessLogTally();
    t.feed(Buffer.from('garbage\n\n' + 'a.example 1.2.3.4 [03/Dec/2026:10:00:00 +0000] "GET /" 200 -\n' + 'a.example 1.2.3.4 [bad date here........] "GET /" 200 5\n' + line('a.example', '03/Dec/2026:10:00:00 +0000', 'GET /', 200, 5)));
    expect(t.usage()).toEqual([{ host: 'a.example', day: '2026-12-03', hits: 1, bytes: 5 }]);
    expect(t.malformed).toBe(4);
  });
});
