/** Hits and bytes of one host on one (UTC) day. */
export interface HostDayUsage {
  host: string;
  /** YYYY-MM-DD, UTC. */
  day: string;
  hits: number;
  bytes: number;
}

const NL = 0x0a;
const SPACE = 0x20;
const BRACKET = 0x5b;
const MONTHS: Record<string, string> = { Jan: '01', Feb: '02', Mar: '03', Apr: '04', May: '05', Jun: '06', Jul: '07', Aug: '08', Sep: '09', Oct: '10', Nov: '11', Dec: '12' };
/** A line longer than this is not ours (a broken write): skipped, never buffered without end. */
const MAX_LINE = 64 * 1024;

/**
 * Counts an access log in the `shop_host` format (host first:
 * `$host $remote_addr [$time_local] "$request" $status $body_bytes_sent`)
 * into hits and bytes per host and UTC day, chunk by chunk, in constant
 * memory apart from the counters. A line is counted once it is whole: the
 * bytes after the last newline wait for the next chunk, and `consumed` says
 * how far the counted lines reach (a cursor may advance exactly that far).
 * Parsing works on the bytes (the host, the date and the last two fields),
 * never splits a line into strings: a request with spaces or quotes in it
 * does not matter.
 */
export class AccessLogTally {
  /** Per day, per host. */
  private readonly counters = new Map<string, Map<string, { hits: number; bytes: number }>>();
  private lastHosts: Map<string, { hits: number; bytes: number }> | null = null;
  private readonly days = new Map<string, string>();
  private rest: Buffer | null = null;
  /** The last decoded stamp (`dd/Mon/yyyy:HH:MM:SS +zzzz`) and its day. */
  private readonly lastStamp = Buffer.alloc(26);
  /** Bytes of whole lines read (counted or skipped). */
  consumed = 0;
  lines = 0;
  malformed = 0;

  feed(chunk: Buffer): void {
    let buf = chunk;
    if (this.rest) {
      // Only the line cut between the chunks is copied, never the chunk.
      const nl = chunk.indexOf(NL);
      const joined = Buffer.concat([this.rest, nl === -1 ? chunk : chunk.subarray(0, nl + 1)]);
      this.rest = null;
      if (nl === -1) {
        this.keep(joined, 0);
        return;
      }
      this.line(joined, 0, joined.length - 1);
      this.consumed += joined.length;
      buf = chunk.subarray(nl + 1);
    }
    let start = 0;
    const length = buf.length;
    // Plain loops over the bytes: a Buffer.indexOf per line costs more in its call than in its search.
    for (let end = 0; end < length; end++) {
      if (buf[end] !== NL) continue;
      this.line(buf, start, end);
      this.consumed += end + 1 - start;
      start = end + 1;
    }
    if (start < buf.length) this.keep(buf, start);
  }

  /** The bytes of a line not ended yet, kept for the next chunk (a line too long to be ours is dropped). */
  private keep(buf: Buffer, start: number): void {
    if (buf.length - start > MAX_LINE) {
      this.consumed += buf.length - start;
      this.malformed++;
      this.rest = null;
    } else {
      this.rest = Buffer.from(buf.subarray(start));
    }
  }

  /** Bytes waiting for their line's end. */
  get pending(): number {
    return this.rest?.length ?? 0;
  }

  usage(): HostDayUsage[] {
    return [...this.counters].flatMap(([day, hosts]) => [...hosts].map(([host, c]) => ({ host, day, hits: c.hits, bytes: c.bytes })));
  }

  private line(buf: Buffer, start: number, end: number): void {
    this.lines++;
    let hostEnd = start;
    while (hostEnd < end && buf[hostEnd] !== SPACE) hostEnd++;
    let bracket = hostEnd;
    while (bracket < end && buf[bracket] !== BRACKET) bracket++;
    if (bracket === end) bracket = -1;
    // `[dd/Mon/yyyy:HH:MM:SS +zzzz]`: 28 bytes.
    if (hostEnd <= start || hostEnd === end || bracket === -1 || bracket + 28 > end || buf[bracket + 27] !== 0x5d) {
      this.malformed++;
      return;
    }
    // The last field: the body bytes (digits), then the status before it.
    let i = end - 1;
    let bytes = 0;
    let scale = 1;
    while (i > bracket && buf[i]! >= 0x30 && buf[i]! <= 0x39) {
      bytes += (buf[i]! - 0x30) * scale;
      scale *= 10;
      i--;
    }
    if (i === end - 1 || buf[i] !== SPACE) {
      this.malformed++;
      return;
    }
    // Lines of one hour share their day: compare the stamp's bytes with the last line's before decoding anything.
    let hosts = this.lastHosts;
    if (hosts === null || !this.sameHour(buf, bracket)) {
      const day = this.dayOf(buf.toString('latin1', bracket + 1, bracket + 15), buf.toString('latin1', bracket + 22, bracket + 27));
      if (day === null) {
        this.malformed++;
        return;
      }
      buf.copy(this.lastStamp, 0, bracket + 1, bracket + 27);
      hosts = this.counters.get(day) ?? new Map();
      this.counters.set(day, hosts);
      this.lastHosts = hosts;
    }
    const host = buf.toString('latin1', start, hostEnd);
    const counter = hosts.get(host);
    if (counter) {
      counter.hits++;
      counter.bytes += bytes;
    } else {
      hosts.set(host, { hits: 1, bytes });
    }
  }

  /** The stamp's hour (`dd/Mon/yyyy:HH`) and zone equal the last decoded line's. */
  private sameHour(buf: Buffer, bracket: number): boolean {
    const last = this.lastStamp;
    for (let k = 0; k < 14; k++) if (buf[bracket + 1 + k] !== last[k]) return false;
    for (let k = 21; k < 26; k++) if (buf[bracket + 1 + k] !== last[k]) return false;
    return true;
  }

  /** `dd/Mon/yyyy:HH` and `+zzzz` to the UTC day (cached: a log has few distinct hours). */
  private dayOf(stamp: string, zone: string): string | null {
    const token = stamp + zone;
    const known = this.days.get(token);
    if (known !== undefined) return known;
    const month = MONTHS[stamp.slice(3, 6)];
    const m = /^(\d\d)\/\w{3}\/(\d{4}):(\d\d)$/.exec(stamp);
    const z = /^([+-])(\d\d)(\d\d)$/.exec(zone);
    if (!month || !m || !z) return null;
    const offsetMin = (z[1] === '-' ? -1 : 1) * (Number(z[2]) * 60 + Number(z[3]));
    const local = Date.UTC(Number(m[2]), Number(month) - 1, Number(m[1]), Number(m[3]));
    // The hour's first minute decides: an offset in minutes moves part of an hour only for odd zones (counted in that hour's day).
    const day = new Date(local - offsetMin * 60_000).toISOString().slice(0, 10);
    if (this.days.size < 100_000) this.days.set(token, day);
    return day;
  }
}
