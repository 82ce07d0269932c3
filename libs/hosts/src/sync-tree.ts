import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import { HostTimeoutError } from './host-executor.errors.js';
import type { HostExecutor, StreamingCommand } from './host-executor.port.js';
import { checkServerPath, UnsafePathError, type ServerRoots } from './server-path.js';

/** A server and the executor that reaches it. */
export interface SyncEnd {
  executor: HostExecutor;
  server: ServerRoots;
}

export interface SyncOptions {
  /** Default 30 minutes: a shared checkout is large. */
  timeoutMs?: number;
  /**
   * Symlinks that point out of the synced path (absolute, or climbing above
   * it) are not copied (rsync --safe-links): for trees a customer writes.
   * They are never followed either way.
   */
  safeLinks?: boolean;
  /**
   * Compare files by content (rsync --checksum), not by size and mtime: for
   * trees whose files may change without either (an FTP client putting the
   * old mtime back). Reads every file on both sides.
   */
  checksum?: boolean;
}

export class SyncFailedError extends Error {
  override name = 'SyncFailedError';
}

const DEFAULT_TIMEOUT_MS = 30 * 60_000;
/** Words rsync passes to a remote shell unescaped; anything else is refused rather than quoted. */
const SAFE_WORD = /^[A-Za-z0-9_@%+=:,./-]+$/;
/** rsync's flags for the receiving side of `-a --delete`: short options with capabilities, and the delete modes. */
const SERVER_FLAG = /^-[A-Za-z0-9.]+$|^--delete(-before|-during|-after|-delay)?$|^--safe-links$/;
const ROOT_KEYS = ['homeRoot', 'sharedCodeRoot', 'nginxConfDir', 'cronDir', 'certsRoot', 'phpFpmPoolDir'] as const;
const MAX_HEADER = 4096;

/**
 * The source side: rsync runs as a client whose "remote shell" is a relay
 * back to the engine over the command's own stdin and stdout (kept on fds
 * 3 and 4; rsync's own messages go to stderr). The relay first writes the
 * receiving command rsync asks for (NUL-separated, an empty word last), then
 * copies bytes both ways. Like ssh, the relay ends when the receiving side
 * does (the engine closes the command's stdin), not when rsync stops
 * writing: rsync waits for its remote shell before closing its own end.
 * No server holds a key to another.
 */
const SOURCE_SCRIPT = 'exec 3<&0 4>&1 0</dev/null 1>&2; SYNC_RELAY=$4; export SYNC_RELAY; src=$1 dest=$2 shell=$3; shift 4; exec rsync -a --delete "$@" -e "$shell" -- "$src" "$dest"';
const RELAY_SHELL = `sh -c 'eval "$SYNC_RELAY"' relay`;
const RELAY = 'printf "%s\\0" "$@" >&4; printf "\\0" >&4; exec 5<&0; cat <&5 >&4 5<&- & exec cat <&3 5<&-';

/**
 * Makes `path` on `to` a copy of `path` on `from` with rsync: symlinks kept
 * as symlinks, owners, groups, modes and times preserved, and what the source
 * no longer has deleted, only inside `path`. The path lies under one of
 * `from`'s roots and lands under the same root of `to` (home under home,
 * shared code under shared code). The engine relays the rsync protocol
 * between the two servers' commands, so servers need no credentials for
 * each other.
 */
export async function syncTree(from: SyncEnd, to: SyncEnd, path: string, options: SyncOptions = {}): Promise<void> {
  const source = checkServerPath(from.server, path, { allowRoot: false });
  const key = rootKeyOf(from.server, source);
  const destRoot = to.server[key];
  if (!destRoot) throw new UnsafePathError(path, `${to.server.hostname} has no ${key} to sync into`);
  const dest = posix.join(destRoot, posix.relative(from.server[key]!, source));
  for (const p of [source, dest]) {
    if (!SAFE_WORD.test(p)) throw new UnsafePathError(p, 'has characters rsync would escape; sync refuses it');
  }
  await from.executor.resolvePath(from.server, source);
  await to.executor.resolvePath(to.server, dest);
  const isDirectory = (await from.executor.run(from.server, ['test', '-d', source])).exitCode === 0;
  if (!isDirectory && !(await from.executor.exists(from.server, source))) {
    throw new SyncFailedError(`sync ${source}: it does not exist on ${from.server.hostname}`);
  }
  await to.executor.mkdir(to.server, isDirectory ? dest : posix.dirname(dest));
  const [srcArg, destArg] = isDirectory ? [`${source}/`, `${dest}/`] : [source, dest];

  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const what = `sync ${source} from ${from.server.hostname} to ${to.server.hostname}`;
  // Extra rsync options come from this fixed list only.
  const extra = [...(options.safeLinks ? ['--safe-links'] : []), ...(options.checksum ? ['--checksum'] : [])];
  const sender = await from.executor.stream(from.server, ['sh', '-c', SOURCE_SCRIPT, 'sync', srcArg, `relay:${destArg}`, RELAY_SHELL, RELAY, ...extra]);
  let receiver: StreamingCommand | undefined;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    sender.kill();
    receiver?.kill();
  }, timeoutMs);
  try {
    let header: string[];
    try {
      header = await readHeader(sender.stdout);
    } catch (error) {
      sender.kill();
      const { stderr } = await sender.done;
      throw new SyncFailedError(`${what}: rsync did not start on ${from.server.hostname}: ${(error as Error).message}${stderr ? `: ${stderr.trim()}` : ''}`);
    }
    const command = receivingCommand(header, destArg);
    receiver = await to.executor.stream(to.server, command);
    sender.stdout.pipe(receiver.stdin);
    receiver.stdout.pipe(sender.stdin);
    // A side's stream ends (and its exit is known) only once its output is read to the end:
    // when one side is done, what the other still prints has nowhere to go and is dropped.
    // When one side ends, the other gets end of input; when one side fails, the
    // other is stopped (it could wait forever for a peer that is gone).
    const settle = (side: StreamingCommand, other: StreamingCommand) =>
      side.done.then((result) => {
        side.stdout.unpipe();
        other.stdin.end();
        other.stdout.unpipe();
        other.stdout.resume();
        if (result.exitCode !== 0) other.kill();
        return result;
      });
    const [sent, received] = await Promise.all([settle(sender, receiver), settle(receiver, sender)]);
    if (timedOut) throw new HostTimeoutError(`${from.server.hostname} → ${to.server.hostname}`, ['rsync', srcArg, destArg], timeoutMs);
    if (sent.exitCode !== 0 || received.exitCode !== 0) {
      const detail = [sent.stderr.trim() && `${from.server.hostname}: ${sent.stderr.trim()}`, received.stderr.trim() && `${to.server.hostname}: ${received.stderr.trim()}`]
        .filter(Boolean)
        .join('; ');
      throw new SyncFailedError(`${what} failed (sender exit ${sent.exitCode}, receiver exit ${received.exitCode})${detail ? `: ${detail}` : ''}`);
    }
  } catch (error) {
    sender.kill();
    receiver?.kill();
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Checks the command the sending rsync asked the relay to start: `rsync
 * --server` with rsync's own flags, `.`, and exactly the destination the
 * engine chose. A source server cannot make the destination run anything
 * else, or write anywhere else.
 */
export function receivingCommand(header: readonly string[], destArg: string): string[] {
  const [host, program, server, ...rest] = header;
  const refuse = (why: string) => {
    throw new SyncFailedError(`refused the receiving command ${JSON.stringify(header)}: ${why}`);
  };
  if (host !== 'relay' || program !== 'rsync' || server !== '--server') refuse('not rsync --server');
  if (rest.length < 2 || rest[rest.length - 1] !== destArg || rest[rest.length - 2] !== '.') refuse(`not a receiver for ${destArg}`);
  const flags = rest.slice(0, -2);
  if (flags.includes('--sender')) refuse('a sender, not a receiver');
  for (const flag of flags) if (!SERVER_FLAG.test(flag) || !SAFE_WORD.test(flag)) refuse(`unexpected argument ${JSON.stringify(flag)}`);
  return ['rsync', '--server', ...flags, '.', destArg];
}

/** Reads NUL-separated words up to an empty word; what follows is put back on the stream. */
function readHeader(stream: Readable): Promise<string[]> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const done = (error?: Error, words?: string[]) => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onEnd);
      if (error) reject(error);
      else resolve(words!);
    };
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered[0] === 0 ? 0 : buffered.indexOf('\0\0');
      if (end === -1) {
        if (buffered.length > MAX_HEADER) done(new Error('no command from the relay in its first 4 KiB'));
        return;
      }
      stream.pause();
      const rest = buffered.subarray(end === 0 ? 1 : end + 2);
      if (rest.length > 0) stream.unshift(rest);
      done(undefined, end === 0 ? [] : buffered.subarray(0, end).toString().split('\0'));
    };
    const onEnd = (error?: Error) => done(error ?? new Error('the relay ended before naming a command'));
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('error', onEnd);
  });
}

function rootKeyOf(server: ServerRoots, path: string): (typeof ROOT_KEYS)[number] {
  let best: (typeof ROOT_KEYS)[number] | undefined;
  for (const key of ROOT_KEYS) {
    const root = server[key];
    if (!root) continue;
    const r = posix.normalize(root).replace(/\/+$/, '');
    if ((path === r || path.startsWith(`${r}/`)) && (!best || r.length > posix.normalize(server[best]!).replace(/\/+$/, '').length)) best = key;
  }
  if (!best) throw new UnsafePathError(path, `outside the roots of ${server.hostname}`);
  return best;
}
