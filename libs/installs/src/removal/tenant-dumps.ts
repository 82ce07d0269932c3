import { Injectable } from '@nestjs/common';
import type { Server } from '@app/catalog';
import { CommandFailedError, ServerAccess, checkServerPath, type StreamingCommand } from '@app/hosts';
import { ownerComment, quoteIdentifier, quoteString, TenantDatabases, type TenantLogin } from '@app/databases';

/** How long a dump or a load may take (a shop's database: minutes at most). */
const DUMP_TIMEOUT_MS = 30 * 60_000;
/** A relay through which no byte has passed for this long is stuck (a session waiting on a lock, a channel that never ends): it fails, and the step with it. */
const STALL_MS = 120_000;
/** A load waits this long for a table lock, not the server's default of a day: a held lock fails the step with the server's own error. */
const LOAD_LOCK_WAIT_S = 60;

/** Finds the dump client (`mariadb-dump`, else `mysqldump`) and dumps one database with the admin's option file (never on argv: a password). */
const DUMP_SCRIPT = String.raw`
d=$(command -v mariadb-dump || command -v mysqldump) || { echo 'no mariadb-dump or mysqldump on this server' >&2; exit 20; }
if [ -n "$1" ]; then exec "$d" --defaults-extra-file="$1" --single-transaction --routines --events --triggers --hex-blob --skip-lock-tables -- "$2"; fi
exec "$d" --single-transaction --routines --events --triggers --hex-blob --skip-lock-tables -- "$2"
`;

/**
 * What the removal needs of a tenant database beyond TenantDatabases (which
 * it reuses for create, drop and accounts): whose a database is (its
 * comment), whether the install's accounts remain, and a dump streamed from
 * the database server into a file on the backup's server (gzip there), and
 * back. SQL on stdin, names checked and quoted, passwords only on stdin.
 */
@Injectable()
export class TenantDumps {
  constructor(
    private readonly access: ServerAccess,
    private readonly tenants: TenantDatabases,
  ) {}

  /** 'ours' (its comment names the install), 'foreign' (another's or none), 'absent'. */
  async databaseOwner(server: Server, name: string, installId: number): Promise<'ours' | 'foreign' | 'absent'> {
    if (this.tenants.sqlite(server)) return (await this.tenants.databaseExists(server, name)) ? 'ours' : 'absent';
    quoteIdentifier(name);
    const out = await this.admin(server, `SELECT CONCAT('=', SCHEMA_COMMENT) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ${quoteString(name)};`);
    if (out === '') return 'absent';
    return out.replace(/\n$/, '').slice(1) === ownerComment({ installId }) ? 'ours' : 'foreign';
  }

  /** The accounts named `login.user`: host → whether it is the install's (its password). */
  async accounts(server: Server, login: TenantLogin): Promise<Map<string, boolean>> {
    if (this.tenants.sqlite(server)) return new Map((await this.tenants.userExists(server, login.user)) ? [['localhost', true]] : []);
    quoteIdentifier(login.user, /^[a-z][a-z0-9_]{0,31}$/);
    const out = await this.admin(
      server,
      `SELECT Host, IF(plugin IN ('mysql_native_password', '') AND authentication_string = PASSWORD(${quoteString(login.password)}), 'ours', 'theirs') FROM mysql.user WHERE User = ${quoteString(login.user)};`,
      [login.password],
    );
    return new Map(out.split('\n').filter(Boolean).map((line) => {
      const [host, whose] = line.split('\t');
      return [host!, whose === 'ours'] as const;
    }));
  }

  /** Streams a dump of `name` from the database server into `to.path` (gzip, 0600) on `to.server`. */
  async dump(dbServer: Server, name: string, to: { server: Server; path: string }): Promise<void> {
    quoteIdentifier(name);
    if (this.tenants.sqlite(dbServer)) throw new Error(`${dbServer.hostname} keeps SQLite tenant databases: no dump`);
    const path = checkServerPath(to.server, to.path, { allowRoot: false });
    const sender = await this.access.executorFor(dbServer).stream(dbServer, ['sh', '-c', DUMP_SCRIPT, 'dump', dbServer.dbOptionsFile ?? '', name]);
    await relay(sender, dbServer, () => this.access.executorFor(to.server).stream(to.server, ['sh', '-c', 'umask 077; exec gzip -c > "$1"', 'write-dump', path]), to.server, `dump of ${name}`);
  }

  /** Loads a dump made by `dump` into `name` (which must exist) as the admin. */
  async load(from: { server: Server; path: string }, dbServer: Server, name: string): Promise<void> {
    quoteIdentifier(name);
    const path = checkServerPath(from.server, from.path, { allowRoot: false });
    const { client } = await this.tenants.connection(dbServer);
    const sender = await this.access.executorFor(from.server).stream(from.server, ['gzip', '-dc', '--', path]);
    const argv = [client, ...(dbServer.dbOptionsFile ? [`--defaults-extra-file=${dbServer.dbOptionsFile}`] : []), '--batch', '--binary-mode', '--default-character-set=utf8mb4', `--init-command=SET SESSION lock_wait_timeout = ${LOAD_LOCK_WAIT_S}`, `--database=${name}`];
    await relay(sender, from.server, () => this.access.executorFor(dbServer).stream(dbServer, argv), dbServer, `load of ${name}`);
  }

  private async admin(server: Server, sql: string, secrets: readonly string[] = []): Promise<string> {
    const { client } = await this.tenants.connection(server);
    const argv = [client, ...(server.dbOptionsFile ? [`--defaults-extra-file=${server.dbOptionsFile}`] : []), '--batch', '--skip-column-names', '--sandbox', '--binary-mode'];
    const result = await this.access.executorFor(server).run(server, argv, { input: sql, timeoutMs: 60_000 });
    if (result.exitCode !== 0) {
      let stderr = result.stderr;
      for (const s of secrets) if (s) stderr = stderr.split(s).join('***');
      throw new CommandFailedError(server.hostname, [client, 'admin'], result.exitCode, stderr);
    }
    return result.stdout;
  }
}

/** How long a relay may take, go without moving a byte, and wait for its commands to end once it killed them. */
export interface RelayTimings {
  timeoutMs: number;
  stallMs: number;
  killGraceMs: number;
}

/** Killed commands normally end at once; past this the relay gives up on them rather than wait forever. */
const KILL_GRACE_MS = 15_000;

/**
 * One-way relay: the sender's stdout into the receiver's stdin; both must
 * exit 0. Bounded: at its timeout, or when no byte moved for `stallMs`, both
 * commands are killed, and if they (or the receiver's start) still have not
 * ended `killGraceMs` later, the relay fails anyway: a step waiting on it
 * fails and is tried again, instead of waiting forever.
 */
export async function relay(
  sender: StreamingCommand,
  from: Pick<Server, 'hostname'>,
  start: () => Promise<StreamingCommand>,
  to: Pick<Server, 'hostname'>,
  what: string,
  timings: RelayTimings = { timeoutMs: DUMP_TIMEOUT_MS, stallMs: STALL_MS, killGraceMs: KILL_GRACE_MS },
): Promise<void> {
  let receiver: StreamingCommand | undefined;
  let stopped: string | null = null;
  // Resolved with the error when the killed commands outlive their grace; each await below races it (and throws it).
  let abandon!: (error: Error) => void;
  const abandoned = new Promise<Error>((resolve) => (abandon = resolve));
  const unlessAbandoned = <T>(work: Promise<T>): Promise<T> =>
    Promise.race([
      work,
      abandoned.then((error) => {
        throw error;
      }),
    ]);
  let grace: NodeJS.Timeout | undefined;
  const stop = (why: string) => {
    if (stopped) return;
    stopped = why;
    sender.kill();
    receiver?.kill();
    grace = setTimeout(() => abandon(new Error(`${what} from ${from.hostname} to ${to.hostname} ${why}, and its commands had not ended ${timings.killGraceMs / 1000} s after being killed`)), timings.killGraceMs);
  };
  const timer = setTimeout(() => stop(`timed out after ${timings.timeoutMs / 1000} s`), timings.timeoutMs);
  let moved = Date.now();
  const watchdog = setInterval(() => {
    if (Date.now() - moved >= timings.stallMs) stop(`stalled: no data moved for ${timings.stallMs / 1000} s`);
  }, Math.min(5_000, timings.stallMs));
  watchdog.unref();
  try {
    // A receiver that starts after the relay gave up is killed at once.
    receiver = await unlessAbandoned<StreamingCommand>(
      start().then((r) => {
        if (stopped) r.kill();
        return r;
      }),
    );
    sender.stdout.pipe(receiver.stdin);
    // After the pipe: a listener before it would start the flow with nowhere to go.
    sender.stdout.on('data', () => (moved = Date.now()));
    receiver.stdout.resume();
    const [sent, received] = await unlessAbandoned(
      Promise.all([
        sender.done.then((r) => {
          if (r.exitCode !== 0) receiver!.kill();
          return r;
        }),
        receiver.done.then((r) => {
          if (r.exitCode !== 0) sender.kill();
          return r;
        }),
      ]),
    );
    if (stopped) throw new Error(`${what} from ${from.hostname} to ${to.hostname} ${stopped}${received.stderr.trim() ? `: ${received.stderr.trim()}` : ''}`);
    if (sent.exitCode !== 0 || received.exitCode !== 0) {
      throw new Error(`${what} from ${from.hostname} to ${to.hostname} failed (exit ${sent.exitCode}/${received.exitCode}): ${[sent.stderr.trim(), received.stderr.trim()].filter(Boolean).join('; ')}`);
    }
  } catch (error) {
    sender.kill();
    receiver?.kill();
    throw error;
  } finally {
    clearTimeout(timer);
    clearTimeout(grace);
    clearInterval(watchdog);
  }
}
