import { performance } from 'node:perf_hooks';
import { posix } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { currentAbortSignal } from '@app/common';
import { CommandAbortedError, CommandFailedError, PathExistsError } from './host-executor.errors.js';
import { encodeFields, PATH_EXISTS, PATH_SCRIPT, PATH_UNSAFE, pathFailure } from './path-ops.js';
import { checkServerPath, rootsOf, UnsafePathError, type ServerRoots } from './server-path.js';

export interface RunOptions {
  cwd?: string;
  env?: Record<string, string>;
  /** Default 60 s. */
  timeoutMs?: number;
  input?: string | Buffer;
  /**
   * When it fires, the command is killed on the server (its whole process
   * group) and the call rejects at once with CommandAbortedError. Default:
   * the signal of the caller's scope (`withAbortSignal` of @app/common).
   */
  signal?: AbortSignal;
}

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** What an adapter returns: output as bytes, so files pass through unchanged. */
export interface RawRunResult {
  exitCode: number;
  stdout: Buffer;
  stderr: Buffer;
}

/** A command whose stdin and stdout are streams (relays such as sync); stderr is collected. */
export interface StreamingCommand {
  stdin: Writable;
  stdout: Readable;
  /**
   * Exit code (128+n for a signal) and stderr, once the command has ended
   * and its stdout has been read to the end (or it was killed).
   */
  done: Promise<{ exitCode: number; stderr: string }>;
  /** Stops the command (and what it started) now; its remaining output is dropped. */
  kill(): void;
}

export interface StreamOptions {
  /** Kills the command when it fires. Default: the signal of the caller's scope. */
  signal?: AbortSignal;
}

/** Options of the file operations; the abort signal defaults to the caller's scope's. */
export interface PathOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
}

export interface FileOptions extends PathOptions {
  mode?: number;
  /** `user`, `user:group`, or `:group`. */
  owner?: string;
}

export interface NewDirectoryOptions extends FileOptions {
  /** A file written inside the new directory by the same remote operation (0644, root's). */
  marker?: { name: string; content: string | Buffer };
}

/** `user`, `user:group`, or `:group` (the group only, the owner unchanged). */
const OWNER = /^([a-z_][a-z0-9_-]{0,31}(:[a-z_][a-z0-9_-]{0,31})?|:[a-z_][a-z0-9_-]{0,31})$/;
const ENV_NAME = /^[A-Z_][A-Z0-9_]{0,63}$/;
const LONG_MS = 600_000;

/**
 * How the engine acts on a server. Adapters (local, SSH) provide `exec` and
 * `startStream`; every other operation is written once here, over argument
 * vectors, so both adapters behave alike.
 *
 * Paths: checked as text against the server's roots first (checkServerPath),
 * then resolved and acted on in ONE remote operation (path-ops.ts) that
 * walks from the root below which the path lies, component by component,
 * never through a symlink, and acts relative to the directory it reached.
 * A symlink anywhere below the root is refused (UnsafePathError), including
 * as the last component, except where an operation says otherwise.
 */
/** Told of every command's end (metrics): the server's hostname, seconds, and whether it exited 0, not 0, or did not run to an end. */
export type CommandObserver = (server: string, seconds: number, outcome: 'ok' | 'failed' | 'error') => void;

export abstract class HostExecutor {
  /** How commands reach their servers, for the metrics. */
  abstract readonly transport: 'ssh' | 'local';
  /** Set by whoever counts commands (the metrics); null: nobody does. */
  observer: CommandObserver | null = null;

  /**
   * Runs argv on the server, never through a shell of ours, with PATH set to
   * the system directories and LC_ALL=C; a missing program exits 127. Kills
   * the command's process group and rejects with CommandAbortedError when
   * `options.signal` fires.
   */
  protected abstract exec(server: ServerRoots, argv: readonly string[], options: RunOptions): Promise<RawRunResult>;

  /** Starts argv with its stdin and stdout as streams (see `stream`). */
  protected abstract startStream(server: ServerRoots, argv: readonly string[]): Promise<StreamingCommand>;

  /**
   * Starts argv with its stdin and stdout as streams, for relays between
   * servers. The caller ends stdin, awaits `done`, and kills it on timeout;
   * the abort signal kills it too. Arguments are checked by the caller (see syncTree).
   */
  async stream(server: ServerRoots, argv: readonly string[], options: StreamOptions = {}): Promise<StreamingCommand> {
    const signal = options.signal ?? currentAbortSignal();
    if (signal?.aborted) throw new CommandAbortedError(server.hostname, argv, signal.reason);
    const command = await this.startStream(server, argv);
    if (!signal) return command;
    const abort = () => command.kill();
    if (signal.aborted) abort();
    else {
      signal.addEventListener('abort', abort, { once: true });
      void command.done.finally(() => signal.removeEventListener('abort', abort));
    }
    return command;
  }

  /** Runs a command; a non-zero exit is returned, not thrown (see `mustRun`). */
  async run(server: ServerRoots, argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    if (argv.length === 0) throw new Error('an empty command');
    for (const name of Object.keys(options.env ?? {})) {
      if (!ENV_NAME.test(name)) throw new Error(`refused environment variable name ${JSON.stringify(name)}`);
    }
    if (options.cwd !== undefined) checkServerPath(server, options.cwd);
    const raw = await this.execute(server, argv, options);
    return { exitCode: raw.exitCode, stdout: raw.stdout.toString(), stderr: raw.stderr.toString() };
  }

  /** Runs a command and throws CommandFailedError (server, command, stderr) when it fails. */
  async mustRun(server: ServerRoots, argv: readonly string[], options: RunOptions = {}): Promise<string> {
    const result = await this.run(server, argv, options);
    if (result.exitCode !== 0) throw new CommandFailedError(server.hostname, argv, result.exitCode, result.stderr);
    return result.stdout;
  }

  /**
   * Atomic: written to a new file beside the target (created exclusively,
   * never through a link, 0600 until done), given its owner then mode on the
   * open handle, then renamed over the target (a symlink there is replaced,
   * never written through); on failure the temporary file is removed, and
   * ones a killed earlier write left are cleared. The directory must exist.
   */
  async writeFile(server: ServerRoots, path: string, content: string | Buffer, options: FileOptions = {}): Promise<void> {
    const target = this.below(server, path);
    const mode = (options.mode ?? 0o644).toString(8);
    const owner = options.owner ? checkOwner(options.owner) : '';
    await this.pathOp(server, 'write', [target.base, target.rel, mode, owner, Buffer.isBuffer(content) ? content : Buffer.from(content)], [path], options);
  }

  /** A regular file's content; a symlink as the file (or on the way) is refused. */
  async readFile(server: ServerRoots, path: string, options: PathOptions = {}): Promise<Buffer> {
    const target = this.below(server, path);
    return this.pathOp(server, 'read', [target.base, target.rel], [path], options);
  }

  /** Whether something (a symlink too, not followed) is at the path; a symlink on the way is refused. */
  async exists(server: ServerRoots, path: string, options: PathOptions = {}): Promise<boolean> {
    const target = this.locate(server, path);
    return (await this.pathOp(server, 'exists', [target.base, target.rel], [path], options)).toString() === '1';
  }

  /** `mkdir -p` of one path (see mkdirs), then its mode and owner. */
  async mkdir(server: ServerRoots, path: string, options: FileOptions = {}): Promise<void> {
    await this.mkdirs(server, [path], options);
  }

  /**
   * `mkdir -p` of many paths in one round trip, never through a symlink
   * (missing directories are made 0755, a symlink on the way is refused).
   * The mode and owner, when given, are set on each listed directory,
   * whether new or already there; never on the directories above it.
   */
  async mkdirs(server: ServerRoots, paths: readonly string[], options: FileOptions = {}): Promise<void> {
    if (paths.length === 0) return;
    const fields = paths.flatMap((p) => {
      const t = this.locate(server, p);
      return [t.base, t.rel];
    });
    const owner = options.owner ? checkOwner(options.owner) : '';
    await this.pathOp(server, 'mkdirs', [options.mode === undefined ? '' : options.mode.toString(8), owner, ...fields], paths, options);
  }

  /**
   * Creates ONE new directory (mode default 0755) in a parent that must
   * exist; throws PathExistsError when anything (a directory, a file, a link)
   * is already at the path: it never adopts one. With `marker`, the marker
   * file is written inside the new directory before its owner is set, in the
   * same operation: a directory this call created always carries it, and a
   * failure after the mkdir removes the directory again.
   */
  async mkdirNew(server: ServerRoots, path: string, options: NewDirectoryOptions = {}): Promise<void> {
    const target = this.below(server, path);
    const owner = options.owner ? checkOwner(options.owner) : '';
    const marker = options.marker;
    if (marker && !isName(marker.name)) throw new UnsafePathError(marker.name, 'not a file name for a marker');
    const content = marker ? (Buffer.isBuffer(marker.content) ? marker.content : Buffer.from(marker.content)) : '';
    const mode = options.mode === undefined ? '' : options.mode.toString(8);
    await this.pathOp(server, 'mkdirnew', [target.base, target.rel, mode, owner, marker ? '1' : '0', marker?.name ?? '', content], [path], options);
  }

  /**
   * Makes `path` a symlink to `target`, replacing what was there atomically
   * (a new link renamed over the old one; a directory there is not
   * replaced). The target may be anywhere the server's roots allow, given
   * absolute or relative to the link; it is not followed.
   */
  async symlink(server: ServerRoots, target: string, path: string, options: PathOptions = {}): Promise<void> {
    await this.symlinkMany(server, [{ target, path }], options);
  }

  /**
   * Many symlinks in one round trip: every link and target is checked as
   * text first, then every parent is reached by the safe walk (which must
   * exist) before any link is made, each link made atomically.
   */
  async symlinkMany(server: ServerRoots, links: readonly { target: string; path: string }[], options: PathOptions = {}): Promise<void> {
    if (links.length === 0) return;
    const groups = new Map<string, { base: string; rel: string; pairs: string[] }>();
    for (const l of links) {
      const at = this.below(server, l.path);
      const to = checkTarget(server, l.target, at.path);
      const rel = posix.dirname(at.rel) === '.' ? '' : posix.dirname(at.rel);
      const key = `${at.base}\0${rel}`;
      const group = groups.get(key) ?? { base: at.base, rel, pairs: [] };
      group.pairs.push(posix.basename(at.rel), to);
      groups.set(key, group);
    }
    const fields = [...groups.values()].flatMap((g) => [g.base, g.rel, String(g.pairs.length / 2), ...g.pairs]);
    await this.pathOp(server, 'symlinks', fields, [`${links.length} links`], { timeoutMs: 120_000, ...options });
  }

  /**
   * `rm -rf` of a path strictly inside a root, never a root; its parent is
   * reached by the safe walk, so a link is removed as a link and nothing is
   * removed through one. Tolerates "already gone".
   */
  async remove(server: ServerRoots, path: string, options: PathOptions = {}): Promise<void> {
    const target = this.below(server, path);
    await this.pathOp(server, 'remove', [target.base, target.rel], [path], { timeoutMs: LONG_MS, ...options });
  }

  /**
   * Sets the owner of each path, never through a symlink: a symlink as the
   * path (or on the way) is refused. `recursive`: `chown -R -P` of a
   * directory, which never follows a link inside it either.
   */
  async chown(server: ServerRoots, paths: string | readonly string[], owner: string, options: PathOptions & { recursive?: boolean } = {}): Promise<void> {
    const list = typeof paths === 'string' ? [paths] : paths;
    if (list.length === 0) return;
    const fields = list.flatMap((p) => {
      const t = this.locate(server, p);
      return [t.base, t.rel];
    });
    await this.pathOp(server, 'chown', [checkOwner(owner), options.recursive ? '1' : '0', ...fields], list, { timeoutMs: LONG_MS, ...options });
  }

  /** `chown -R -P` of one path (see chown). */
  async chownRecursive(server: ServerRoots, path: string, owner: string, options: PathOptions = {}): Promise<void> {
    await this.chown(server, [path], owner, { ...options, recursive: true });
  }

  /** Sets the mode of each path (a file or a directory) on its open handle; a symlink as the path (or on the way) is refused. */
  async chmod(server: ServerRoots, paths: string | readonly string[], mode: number, options: PathOptions = {}): Promise<void> {
    const list = typeof paths === 'string' ? [paths] : paths;
    if (list.length === 0) return;
    if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) throw new Error(`refused mode ${mode}`);
    const fields = list.flatMap((p) => {
      const t = this.locate(server, p);
      return [t.base, t.rel];
    });
    await this.pathOp(server, 'chmod', [mode.toString(8), '0', ...fields], list, options);
  }

  /**
   * Makes each `to` a copy of `from` (`cp -a`: links kept as links, owners,
   * modes and times kept), replacing what was at `to`. Both are reached by
   * the safe walk (`to`'s missing parents are made); a symlink as `from` or
   * `to` is refused or replaced, never followed. A directory is copied into
   * a new directory beside `to`, then renamed into place.
   */
  async copyTree(server: ServerRoots, pairs: readonly { from: string; to: string }[], options: PathOptions = {}): Promise<void> {
    if (pairs.length === 0) return;
    const fields = pairs.flatMap((p) => {
      const from = this.below(server, p.from);
      const to = this.below(server, p.to);
      return [from.base, from.rel, to.base, to.rel];
    });
    await this.pathOp(server, 'copy', fields, pairs.map((p) => `${p.from} → ${p.to}`), { timeoutMs: LONG_MS, ...options });
  }

  /**
   * The path checked against the roots, and on the server: no component
   * below its root that exists is a symlink. A check only: the operations
   * above check and act in one step; prefer them.
   */
  async resolvePath(server: ServerRoots, path: string, options: PathOptions = {}): Promise<string> {
    const target = this.locate(server, path);
    await this.pathOp(server, 'check', [target.base, target.rel], [path], options);
    return target.path;
  }

  private execute(server: ServerRoots, argv: readonly string[], options: RunOptions): Promise<RawRunResult> {
    const signal = options.signal ?? currentAbortSignal();
    if (signal?.aborted) return Promise.reject(new CommandAbortedError(server.hostname, argv, signal.reason));
    const running = this.exec(server, argv, signal ? { ...options, signal } : options);
    const observer = this.observer;
    if (!observer) return running;
    const started = performance.now();
    const seconds = () => (performance.now() - started) / 1000;
    return running.then(
      (result) => {
        observer(server.hostname, seconds(), result.exitCode === 0 ? 'ok' : 'failed');
        return result;
      },
      (error: unknown) => {
        observer(server.hostname, seconds(), 'error');
        throw error;
      },
    );
  }

  /** The command that runs one operation of PATH_SCRIPT on the server: a new perl here; a transport may have it built in. */
  protected pathOpArgv(op: string): readonly string[] {
    return ['perl', '-e', PATH_SCRIPT, op];
  }

  /** Runs one operation of PATH_SCRIPT; its failures become UnsafePathError, PathExistsError or CommandFailedError. */
  private async pathOp(server: ServerRoots, op: string, fields: readonly (string | Buffer)[], shown: readonly string[], options: PathOptions): Promise<Buffer> {
    const result = await this.execute(server, this.pathOpArgv(op), { input: encodeFields(fields), timeoutMs: options.timeoutMs, signal: options.signal });
    if (result.exitCode === 0) return result.stdout;
    const stderr = result.stderr.toString();
    const failure = pathFailure(stderr);
    if (result.exitCode === PATH_UNSAFE && failure) throw new UnsafePathError(failure.path, `${failure.why} on ${server.hostname}`);
    if (result.exitCode === PATH_EXISTS && failure) throw new PathExistsError(server.hostname, failure.path);
    const readable = stderr.replace(/^(?:unsafe|exists|error)\t([^\t]*)\t(.*)$/gm, '$2: $1');
    throw new CommandFailedError(server.hostname, [op, ...shown], result.exitCode, readable);
  }

  /**
   * A path as the walk takes it: the root it lies below (the longest that
   * contains it: roots are the operator's, entered as configured) and the
   * components below that root ('' for the root itself).
   */
  private locate(server: ServerRoots, path: string, options: { allowRoot?: boolean } = {}): { path: string; base: string; rel: string } {
    const checked = checkServerPath(server, path, options);
    const root = rootsOf(server)
      .filter((r) => checked === r || checked.startsWith(r === '/' ? '/' : `${r}/`))
      .reduce((a, b) => (b.length > a.length ? b : a));
    return { path: checked, base: root, rel: checked === root ? '' : checked.slice(root === '/' ? 1 : root.length + 1) };
  }

  /** As locate, for operations on an entry strictly below a root. */
  private below(server: ServerRoots, path: string): { path: string; base: string; rel: string } {
    return this.locate(server, path, { allowRoot: false });
  }
}

/**
 * A link's target: absolute and inside the roots, or relative (kept
 * relative, so a tree synced to a server with the same layout still
 * resolves) and inside the roots once resolved from the link's directory.
 */
function checkTarget(server: ServerRoots, target: string, link: string): string {
  if (target.startsWith('/')) return checkServerPath(server, target);
  if (target === '' || target.includes('\0') || /[\n\r]/.test(target)) throw new UnsafePathError(target, 'not a usable link target');
  checkServerPath(server, posix.join(posix.dirname(link), target));
  return target;
}

function checkOwner(owner: string): string {
  if (!OWNER.test(owner)) throw new Error(`refused owner ${JSON.stringify(owner)}: expected user, user:group or :group`);
  return owner;
}

function isName(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && !/[/\0\n\r]/.test(name);
}
