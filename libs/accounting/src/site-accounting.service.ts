import { Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { posix } from 'node:path';
import { DataSource, type EntityManager } from 'typeorm';
import { AccessLogCursor, Server } from '@app/catalog';
import { ServerAccess } from '@app/hosts';
import { sqlDialect } from '@app/queue';
import { DispatcherInputLoader } from '@app/webserver';
import { COUNT_SCRIPT, mergeCounts, parseCount, type HostDayUsage, type LogCount } from './access-log-count.js';

/** What one dispatcher's pass counted. */
export interface AccountingPass {
  server: string;
  path: string;
  /** Bytes of whole lines read this pass (the cursor moved this far, over one or two files). */
  bytes: number;
  lines: number;
  malformed: number;
  /** Lines whose host is no install's name (a scanner, a removed site): read, not counted. */
  unknownHostLines: number;
  rotated: boolean;
  /** The counter's peak memory on the dispatcher (KiB): bounded by hosts x hours, not by the log's size. */
  counterPeakKib: number;
  /** What was lost (a log rotated twice between passes, a truncated one), said plainly. */
  notes: string[];
}

interface FileState {
  inode: string;
  size: number;
}

const SAFE_PATH = /^\/[A-Za-z0-9._/-]+$/;
/** A log range is counted in up to this many pieces at once (a dispatcher's cores), each of at least PIECE_BYTES. */
const COUNT_PIECES = 4;
const PIECE_BYTES = 128 * 1024 * 1024;
const ROWS_PER_STATEMENT = 500;

/**
 * The seed's cron_site_accounting: each dispatcher's shops access log
 * (format `shop_host`, host first) counted from where the last pass
 * stopped, on the dispatcher itself (COUNT_SCRIPT: only the counts per host
 * and hour cross the network), into hits and bytes per install, hostname
 * and UTC day. A pass reads up to
 * the file's size when it started and counts whole lines only; the counters
 * and the new cursor are written in one transaction, guarded by the old
 * cursor, so a line is counted once even when a pass dies midway or two
 * engines meet. Rotation (`shops-access.log` renamed to `.1`, a new file)
 * is followed by inode: the rest of the old file first, then the new one; a
 * file cut short (copytruncate) starts again at 0.
 */
@Injectable()
export class SiteAccounting {
  private readonly logger = new Logger('SiteAccounting');

  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly access: ServerAccess,
    private readonly loader: DispatcherInputLoader,
  ) {}

  /** One pass over every dispatcher that is not down. */
  async run(log: (line: string) => void = () => undefined): Promise<AccountingPass[]> {
    const servers = (await this.dataSource.getRepository(Server).find({ order: { id: 'ASC' } })).filter((s) => s.roles.includes('dispatcher') && s.state !== 'down');
    const passes: AccountingPass[] = [];
    for (const server of servers) {
      try {
        const pass = await this.account(server);
        passes.push(pass);
        log(`${server.hostname}: ${pass.lines} line(s), ${pass.bytes} byte(s) of ${pass.path}${pass.rotated ? ' (rotated)' : ''}${pass.unknownHostLines ? `, ${pass.unknownHostLines} for no install` : ''}${pass.malformed ? `, ${pass.malformed} malformed` : ''}`);
        for (const note of pass.notes) log(`${server.hostname}: ${note}`);
      } catch (error) {
        // One dispatcher unreachable: the others are counted; it is read from its cursor next time.
        log(`${server.hostname}: not counted this time: ${error instanceof Error ? error.message : String(error)}`);
        this.logger.warn({ server: server.hostname, err: error }, 'site accounting of a dispatcher failed');
      }
    }
    return passes;
  }

  /** One dispatcher's log, from its cursor (`path`: the shops' access log unless given, for tests of other paths). */
  async account(server: Server, path = this.loader.accessLog(server)): Promise<AccountingPass> {
    if (!SAFE_PATH.test(path) || path.split('/').includes('..')) throw new Error(`refused access log path ${JSON.stringify(path)}`);
    const pass: AccountingPass = { server: server.hostname, path, bytes: 0, lines: 0, malformed: 0, unknownHostLines: 0, rotated: false, counterPeakKib: 0, notes: [] };
    const cursor = await this.dataSource.getRepository(AccessLogCursor).findOne({ where: { serverId: server.id, path } });
    const current = await this.stat(server, path);
    if (!current) return pass;
    const from = { inode: cursor?.inode ?? null, offset: Number(cursor?.offset ?? 0) };
    const counts: (LogCount & { pending: number })[] = [];
    let start = 0;
    if (from.inode === current.inode) {
      start = from.offset;
      if (current.size < start) {
        pass.notes.push(`${path} is shorter than where the last pass stopped (${current.size} < ${start}: truncated in place); counted again from its start`);
        start = 0;
      }
    } else if (from.inode !== null) {
      pass.rotated = true;
      const previous = rotatedLog(path);
      const old = await this.stat(server, previous);
      if (old && old.inode === from.inode) {
        // The rest of the rotated file (nginx writes to it until it reopens its logs).
        const rest = await this.count(server, previous, from.offset, old.size);
        // A line the old file ends without a newline is not joined to the new file's first.
        if (rest.pending > 0) pass.notes.push(`${previous} ends inside a line: ${rest.pending} byte(s) not counted`);
        counts.push(rest);
      } else {
        pass.notes.push(`${path} was rotated more than once since the last pass (or ${previous} is gone): the old file's lines after byte ${from.offset} are not counted`);
      }
    }
    const count = await this.count(server, path, start, current.size);
    counts.push(count);
    for (const c of counts) {
      pass.lines += c.lines;
      pass.malformed += c.malformed;
      pass.bytes += c.stop - c.first;
      pass.counterPeakKib = Math.max(pass.counterPeakKib, c.peakKib);
    }
    await this.save(server, path, cursor, { inode: current.inode, offset: count.stop }, counts.flatMap((c) => c.usage), pass);
    return pass;
  }

  /** Inode and size, or null when there is no such file. */
  private async stat(server: Server, path: string): Promise<FileState | null> {
    const result = await this.access.executorFor(server).run(server, ['stat', '--format=%i %s', '--', path], { timeoutMs: 15_000 });
    if (result.exitCode !== 0) {
      if (/No such file/.test(result.stderr)) return null;
      throw new Error(`stat ${path} on ${server.hostname}: ${result.stderr.trim()}`);
    }
    const [inode, size] = result.stdout.trim().split(' ');
    if (!/^\d+$/.test(inode ?? '') || !/^\d+$/.test(size ?? '')) throw new Error(`stat ${path} on ${server.hostname}: unexpected output ${JSON.stringify(result.stdout)}`);
    return { inode: inode!, size: Number(size) };
  }

  /**
   * The whole lines of bytes [start, end) counted where the file is
   * (COUNT_SCRIPT: only the counts come back). A long range is split into
   * pieces of at least PIECE_BYTES counted at once (up to COUNT_PIECES
   * processes): each line lands in exactly one piece, and the pieces must
   * meet, or nothing is counted.
   */
  private async count(server: Server, path: string, start: number, end: number): Promise<LogCount & { pending: number }> {
    if (end <= start) return { first: start, stop: start, lines: 0, malformed: 0, peakKib: 0, usage: [], pending: 0 };
    const pieces = Math.max(1, Math.min(COUNT_PIECES, Math.floor((end - start) / PIECE_BYTES)));
    const bounds = Array.from({ length: pieces + 1 }, (_, i) => (i === pieces ? end : start + Math.floor(((end - start) * i) / pieces)));
    const executor = this.access.executorFor(server);
    const counted = await Promise.all(
      bounds.slice(0, -1).map(async (from, i) => {
        const result = await executor.run(server, ['perl', '-e', COUNT_SCRIPT, path, String(from), String(bounds[i + 1]), String(end)], { timeoutMs: 30 * 60_000 });
        if (result.exitCode !== 0) throw new Error(`counting ${path} on ${server.hostname}: ${result.stderr.trim() || `exit ${result.exitCode}`}`);
        return parseCount(result.stdout);
      }),
    );
    counted.forEach((piece, i) => {
      const next = counted[i + 1];
      if (next && piece.stop !== next.first) throw new Error(`counting ${path} on ${server.hostname}: its pieces do not meet (${piece.stop} and ${next.first}); nothing counted`);
    });
    const total = mergeCounts(counted);
    return { ...total, pending: end - total.stop };
  }

  /** The counters and the cursor, in one transaction guarded by the cursor read at the start. */
  private async save(server: Server, path: string, cursor: AccessLogCursor | null, to: { inode: string; offset: number }, usage: HostDayUsage[], pass: AccountingPass): Promise<void> {
    await this.dataSource.transaction(async (manager) => {
      if (cursor) {
        const moved = await manager
          .createQueryBuilder()
          .update(AccessLogCursor)
          .set({ inode: to.inode, offset: String(to.offset) })
          .where('id = :id AND inode = :inode AND `offset` = :offset'.replace(/`/g, this.quote()), { id: cursor.id, inode: cursor.inode, offset: cursor.offset })
          .execute();
        if ((moved.affected ?? 0) !== 1) throw new Error(`the cursor of ${path} on ${server.hostname} moved meanwhile (another engine counted it): nothing saved`);
      } else {
        await manager.getRepository(AccessLogCursor).insert({ serverId: server.id, path, inode: to.inode, offset: String(to.offset) });
      }
      pass.unknownHostLines = await this.add(manager, usage);
    });
  }

  /** Adds the counts to each install's rows (by the names its sites claim); returns the lines of hosts no install has. */
  private async add(manager: EntityManager, usage: HostDayUsage[]): Promise<number> {
    if (usage.length === 0) return 0;
    const hosts = [...new Set(usage.map((u) => u.host))];
    const owner = new Map<string, number>();
    for (let i = 0; i < hosts.length; i += ROWS_PER_STATEMENT) {
      const part = hosts.slice(i, i + ROWS_PER_STATEMENT);
      const rows = (await manager.query(`SELECT name, install_id FROM site_names WHERE name IN (${part.map(() => '?').join(', ')})`, part)) as { name: string; install_id: number }[];
      for (const row of rows) owner.set(row.name, Number(row.install_id));
    }
    let unknown = 0;
    const known = usage.filter((u) => {
      if (owner.has(u.host)) return true;
      unknown += u.hits;
      return false;
    });
    const mysql = sqlDialect(this.dataSource).kind === 'mysql';
    for (let i = 0; i < known.length; i += ROWS_PER_STATEMENT) {
      const part = known.slice(i, i + ROWS_PER_STATEMENT);
      const values = part.map(() => '(?, ?, ?, ?, ?)').join(', ');
      const params = part.flatMap((u) => [owner.get(u.host)!, u.host, u.day, u.hits, u.bytes]);
      await manager.query(
        mysql
          ? `INSERT INTO site_usage (install_id, hostname, day, hits, bytes) VALUES ${values} ON DUPLICATE KEY UPDATE hits = hits + VALUES(hits), bytes = bytes + VALUES(bytes)`
          : `INSERT INTO site_usage (install_id, hostname, day, hits, bytes) VALUES ${values} ON CONFLICT (install_id, hostname, day) DO UPDATE SET hits = hits + excluded.hits, bytes = bytes + excluded.bytes, updated_at = datetime('now')`,
        params,
      );
    }
    return unknown;
  }

  private quote(): string {
    return sqlDialect(this.dataSource).kind === 'mysql' ? '`' : '"';
  }
}

/** A dispatcher's rotated log, for tests and operators: `<log>.1`. */
export const rotatedLog = (path: string) => posix.join(posix.dirname(path), `${posix.basename(path)}.1`);
