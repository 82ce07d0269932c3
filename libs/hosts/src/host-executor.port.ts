import { randomBytes } from 'node:crypto';
import { posix } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { CommandFailedError } from './host-executor.errors.js';
import { checkServerPath, UnsafePathError, type ServerRoots } from './server-path.js';

export interface RunOptions {
  cwd?: string;
  env?: Record<string, string>;
  /** Default 60 s. */
  timeoutMs?: number;
  input?: string | Buffer;
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

export interface FileOptions {
  mode?: number;
  /** `user`, `user:group`, or `:group`. */
  owner?: string;
}

/** Reads target/link pairs (NUL-separated) and makes each link: a new link renamed over the old one. */
const SYMLINKS_SCRIPT = String.raw`
use strict; use warnings;
local $/ = "\0";
my @words = <STDIN>;
chomp @words;
die "an odd number of words\n" if @words % 2;
# Temporary links a killed earlier run left behind: "<link>.lnk-<pid>" beside links of this batch.
my %ours; for (my $i = 1; $i < @words; $i += 2) { my ($d, $b) = $words[$i] =~ m{^(.*)/([^/]+)$}; $ours{$d}{$b} = 1 if defined $b; }
for my $d (keys %ours) {
  opendir(my $dh, $d) or next;
  unlink map { "$d/$_" } grep { /^(.+)\.lnk-\d+$/ && $ours{$d}{$1} } readdir($dh);
  closedir($dh);
}
while (@words) {
  my ($target, $link) = splice(@words, 0, 2);
  my $temp = "$link.lnk-$$";
  symlink($target, $temp) or die "cannot create $link: $!\n";
  rename($temp, $link) or do { my $e = $!; unlink $temp; die "cannot replace $link: $e\n" };
}
`;

/** `user`, `user:group`, or `:group` (the group only, the owner unchanged). */
const OWNER = /^([a-z_][a-z0-9_-]{0,31}(:[a-z_][a-z0-9_-]{0,31})?|:[a-z_][a-z0-9_-]{0,31})$/;
const ENV_NAME = /^[A-Z_][A-Z0-9_]{0,63}$/;

/**
 * How the engine acts on a server. Adapters (local, SSH) provide `exec`;
 * every other operation is written once here, over argument vectors, so both
 * adapters behave alike. Every path is checked against the server's roots
 * before use, and again after resolving symlinks on the server itself.
 */
export abstract class HostExecutor {
  /**
   * Runs argv on the server, never through a shell of ours, with PATH set to
   * the system directories and LC_ALL=C; a missing program exits 127.
   */
  protected abstract exec(server: ServerRoots, argv: readonly string[], options: RunOptions): Promise<RawRunResult>;

  /**
   * Starts argv with its stdin and stdout as streams, for relays between
   * servers. The caller ends stdin, awaits `done`, and kills it on timeout.
   * Arguments are checked by the caller (see syncTree).
   */
  abstract stream(server: ServerRoots, argv: readonly string[]): Promise<StreamingCommand>;

  /** Runs a command; a non-zero exit is returned, not thrown (see `mustRun`). */
  async run(server: ServerRoots, argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    if (argv.length === 0) throw new Error('an empty command');
    for (const name of Object.keys(options.env ?? {})) {
      if (!ENV_NAME.test(name)) throw new Error(`refused environment variable name ${JSON.stringify(name)}`);
    }
    if (options.cwd !== undefined) checkServerPath(server, options.cwd);
    const raw = await this.exec(server, argv, options);
    return { exitCode: raw.exitCode, stdout: raw.stdout.toString(), stderr: raw.stderr.toString() };
  }

  /** Runs a command and throws CommandFailedError (server, command, stderr) when it fails. */
  async mustRun(server: ServerRoots, argv: readonly string[], options: RunOptions = {}): Promise<string> {
    const result = await this.run(server, argv, options);
    if (result.exitCode !== 0) throw new CommandFailedError(server.hostname, argv, result.exitCode, result.stderr);
    return result.stdout;
  }

  /**
   * Atomic: written to a new temporary file in the same directory (created
   * exclusively, mode 0600 until done), given its mode and owner, then
   * renamed over the target; on any failure the temporary file is removed.
   * One command, one round trip.
   */
  async writeFile(server: ServerRoots, path: string, content: string | Buffer, options: FileOptions = {}): Promise<void> {
    const target = await this.resolvePath(server, path);
    const temp = posix.join(posix.dirname(target), `.${posix.basename(target)}.tmp-${randomBytes(6).toString('hex')}`);
    // First, temporary files of this target that a killed earlier write left behind ($5 and $6 are quoted: literal).
    const script =
      'for f in "$5"/."$6".tmp-*; do [ ! -e "$f" ] || rm -f -- "$f"; done; ' +
      'set -C; umask 077; cat > "$1" && chmod -- "$2" "$1" && { [ -z "$3" ] || chown -- "$3" "$1"; } && mv -f -T -- "$1" "$4" ' +
      '|| { s=$?; rm -f -- "$1"; exit $s; }';
    const mode = (options.mode ?? 0o644).toString(8);
    const owner = options.owner ? checkOwner(options.owner) : '';
    const result = await this.exec(server, ['sh', '-c', script, 'write-file', temp, mode, owner, target, posix.dirname(target), posix.basename(target)], {
      input: Buffer.isBuffer(content) ? content : Buffer.from(content),
    });
    if (result.exitCode !== 0) throw new CommandFailedError(server.hostname, ['writeFile', target], result.exitCode, result.stderr.toString());
  }

  async readFile(server: ServerRoots, path: string): Promise<Buffer> {
    const target = await this.resolvePath(server, path);
    const argv = ['cat', '--', target];
    const result = await this.exec(server, argv, {});
    if (result.exitCode !== 0) throw new CommandFailedError(server.hostname, argv, result.exitCode, result.stderr.toString());
    return result.stdout;
  }

  async exists(server: ServerRoots, path: string): Promise<boolean> {
    const target = checkServerPath(server, path);
    return (await this.run(server, ['test', '-e', target])).exitCode === 0;
  }

  /** `mkdir -p`, then mode and owner of the last directory. */
  async mkdir(server: ServerRoots, path: string, options: FileOptions = {}): Promise<void> {
    const target = await this.resolvePath(server, path);
    await this.mustRun(server, ['mkdir', '-p', target]);
    if (options.mode !== undefined) await this.mustRun(server, ['chmod', options.mode.toString(8), target]);
    if (options.owner) await this.mustRun(server, ['chown', checkOwner(options.owner), target]);
  }

  /**
   * Makes `path` a symlink to `target`, replacing what was there atomically
   * (a new link renamed over the old one). The target may be anywhere the
   * server's roots allow, given absolute or relative to the link.
   */
  async symlink(server: ServerRoots, target: string, path: string): Promise<void> {
    const link = await this.resolvePath(server, path);
    const to = checkTarget(server, target, link);
    const temp = posix.join(posix.dirname(link), `.${posix.basename(link)}.lnk-${randomBytes(6).toString('hex')}`);
    const script =
      'for f in "$4"/."$5".lnk-*; do [ ! -e "$f" ] && [ ! -L "$f" ] || rm -f -- "$f"; done; ' +
      'ln -s -n -- "$1" "$2" && mv -f -T -- "$2" "$3" || { s=$?; rm -f -- "$2"; exit $s; }';
    const result = await this.run(server, ['sh', '-c', script, 'symlink', to, temp, link, posix.dirname(link), posix.basename(link)]);
    if (result.exitCode !== 0) throw new CommandFailedError(server.hostname, ['symlink', to, link], result.exitCode, result.stderr);
  }

  /**
   * Many symlinks in a couple of round trips: every link and target is
   * checked (links also after resolving their parents on the server, in one
   * `realpath` call), then one constant Perl script (perl-base, on every
   * Debian server) reads NUL-separated pairs from stdin and makes each link
   * atomically, without a process per link. Data never becomes code.
   */
  async symlinkMany(server: ServerRoots, links: readonly { target: string; path: string }[]): Promise<void> {
    if (links.length === 0) return;
    const checked = links.map((l) => {
      const path = checkServerPath(server, l.path);
      return { target: checkTarget(server, l.target, path), path };
    });
    const parents = [...new Set(checked.map((l) => posix.dirname(l.path)))];
    const resolved = (await this.mustRun(server, ['realpath', '-m', '-z', '--', ...parents])).split('\0').filter((p) => p !== '');
    resolved.forEach((real, i) => {
      try {
        checkServerPath(server, real);
      } catch {
        throw new UnsafePathError(parents[i]!, `resolves through a symlink to ${real}, outside the roots of ${server.hostname}`);
      }
    });
    await this.mustRun(server, ['perl', '-e', SYMLINKS_SCRIPT], {
      input: checked.map((l) => `${l.target}\0${l.path}\0`).join(''),
      timeoutMs: 120_000,
    });
  }

  /** `rm -rf` of a path strictly inside a root; a root itself is refused. Tolerates "already gone". */
  async remove(server: ServerRoots, path: string): Promise<void> {
    const target = checkServerPath(server, path, { allowRoot: false });
    // The link itself, not what it points to, is what gets removed: check its parent's real location.
    await this.resolvePath(server, posix.dirname(target));
    await this.mustRun(server, ['rm', '-rf', '--one-file-system', '--', target]);
  }

  /** `chown -R` without following symlinks out of the tree. */
  async chownRecursive(server: ServerRoots, path: string, owner: string): Promise<void> {
    const target = await this.resolvePath(server, path);
    await this.mustRun(server, ['chown', '-R', '-P', checkOwner(owner), target]);
  }

  /**
   * The path checked against the roots, then resolved on the server
   * (`realpath -m`: symlinks followed, missing parts allowed) and checked
   * again, so a symlink cannot lead an operation out of the roots.
   */
  async resolvePath(server: ServerRoots, path: string): Promise<string> {
    const checked = checkServerPath(server, path);
    const real = (await this.mustRun(server, ['realpath', '-m', '--', checked])).replace(/\n$/, '');
    try {
      checkServerPath(server, real);
    } catch {
      throw new UnsafePathError(path, `resolves through a symlink to ${real}, outside the roots of ${server.hostname}`);
    }
    return checked;
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
