import { createHash } from 'node:crypto';
import { constants } from 'node:os';
import { PassThrough, type Readable } from 'node:stream';
import { Injectable, type OnModuleDestroy } from '@nestjs/common';
import { NodeSSH } from 'node-ssh';
import type { ClientChannel } from 'ssh2';
import { CommandAbortedError, HostTimeoutError } from './host-executor.errors.js';
import { HostExecutor, type RawRunResult, type RunOptions, type StreamingCommand } from './host-executor.port.js';
import { decodeReplies, encodeRequest, RUNNER_BUILTIN, RUNNER_SCRIPT, type RunnerReply, type RunnerRequest } from './remote-runner.js';
import type { ServerRoots } from './server-path.js';
import { commandLine } from './shell-quote.js';

/** Where and as whom to reach a server over SSH; the key is a path, never key material. */
export interface SshTarget extends ServerRoots {
  sshHost: string | null;
  sshPort: number | null;
  sshUser: string | null;
  /** Private key file; falls back to the engine's SSH_KEY_PATH. */
  sshKeyRef: string | null;
  /** Pinned host key fingerprint, `SHA256:...` as `ssh-keygen -lf` prints it. */
  sshHostKey: string | null;
}

export class HostKeyError extends Error {
  override name = 'HostKeyError';
}

const DEFAULT_TIMEOUT_MS = 60_000;
/** Kills a process group; one already gone is not a failure. */
const KILL_GROUP = 'kill("KILL", -$ARGV[0]) or $! =~ /No such process/ or die "kill: $!\\n"';
const CONNECT_TIMEOUT_MS = 10_000;
/** Sessions (runners and streams) per connection; OpenSSH allows 10 by default. */
const SESSIONS_PER_CONNECTION = 8;
/** How long after a command's own timeout the runner may take to report it, before the engine stops waiting. */
const TIMEOUT_GRACE_MS = 1_000;

/** The OpenSSH SHA256 fingerprint of a raw host key. */
export function hostKeyFingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/**
 * What the runner is sent for `argv`: `perl -e <script> args` goes to its
 * builtin `perl` (the script run in the child it forks, without starting a
 * perl: see RUNNER_SCRIPT); anything else as it is.
 */
function runnerArgv(argv: readonly string[]): readonly string[] {
  return argv.length >= 3 && argv[0] === 'perl' && argv[1] === '-e' ? [RUNNER_BUILTIN, 'perl', ...argv.slice(2)] : argv;
}

/**
 * Servers over SSH: one pooled connection per server (reconnected after a
 * failure), the host key pinned (a mismatch is a hard error), a timeout on
 * every call. Commands go to long-lived runners on that connection (see
 * remote-runner.ts) as argument vectors, so a command is one round trip.
 */
@Injectable()
export class SshExecutor extends HostExecutor implements OnModuleDestroy {
  readonly transport = 'ssh' as const;
  private readonly connections = new Map<string, Promise<SshConnection>>();

  /** Connections held open (or being opened): one per server in use. */
  get pooledConnections(): number {
    return this.connections.size;
  }

  constructor(private readonly defaultKeyPath: string | null = null) {
    super();
  }

  /** The runner has the file operations built in: a fork on the server, not a new perl. */
  protected override pathOpArgv(op: string): readonly string[] {
    return [RUNNER_BUILTIN, 'path', op];
  }

  protected async exec(server: SshTarget, argv: readonly string[], options: RunOptions): Promise<RawRunResult> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const signal = options.signal;
    const aborted = () => new CommandAbortedError(server.hostname, argv, signal?.reason);
    const started = Date.now();
    // The pooled connection is shared: a caller that gives up leaves it to the others.
    const connection = await untilAborted(this.connection(server, timeoutMs), signal, aborted);
    const runner = await connection.runner(Math.max(1, timeoutMs - (Date.now() - started)), signal, aborted);
    let reusable = false;
    try {
      if (signal?.aborted) throw aborted();
      const reply = await runner.run({ argv: runnerArgv(argv), cwd: options.cwd, env: options.env, input: options.input, timeoutMs }, timeoutMs + TIMEOUT_GRACE_MS, signal, aborted);
      reusable = true;
      if (reply.status === 'timeout') throw new HostTimeoutError(server.hostname, argv, timeoutMs);
      return { exitCode: reply.exitCode, stdout: reply.stdout, stderr: reply.stderr };
    } catch (error) {
      if (error instanceof RunnerTimeoutError) throw new HostTimeoutError(server.hostname, argv, timeoutMs);
      throw error;
    } finally {
      // A runner that did not answer (timed out, aborted) is closed: its channel's end is
      // the runner's end of input, on which it kills the command's process group.
      connection.release(runner, reusable);
    }
  }

  protected async startStream(server: SshTarget, argv: readonly string[]): Promise<StreamingCommand> {
    const connection = await this.connection(server, CONNECT_TIMEOUT_MS);
    const { channel, stdout, group } = await connection.stream(argv, CONNECT_TIMEOUT_MS);
    let ended = false;
    let killFailure = '';
    const stderr: Buffer[] = [];
    channel.stderr.on('data', (c: Buffer) => stderr.push(c));
    channel.stderr.resume();
    let exitCode = -1;
    channel.on('exit', (code: number | null, signal?: string) => {
      // ssh2 names the signal `SIGKILL` (the protocol says `KILL`).
      const name = (signal?.startsWith('SIG') ? signal : `SIG${signal}`) as NodeJS.Signals;
      exitCode = code ?? 128 + (signal ? (constants.signals[name] ?? 0) : 0);
    });
    const done = new Promise<{ exitCode: number; stderr: string }>((resolve) => {
      // A connection that breaks may never close its channels cleanly: that ends the command too.
      const lost = () => {
        channel.resume();
        stdout.resume();
        resolve({ exitCode: -1, stderr: `${Buffer.concat(stderr).toString()}${server.hostname}: the SSH connection was lost\n` });
      };
      const forget = connection.onLost(lost);
      channel.once('close', () => {
        ended = true;
        forget();
        resolve({ exitCode, stderr: Buffer.concat(stderr).toString() + killFailure });
      });
    });
    // Closing the session does not stop a command that does not read its input, and sshd
    // may refuse "signal" requests: the session's process group is killed from another runner.
    let killing = false;
    const kill = () => {
      if (!killing && !ended) {
        const failed = (why: string) => (killFailure = `${server.hostname}: cannot kill process group ${group}: ${why}\n`);
        void this.exec(server, ['perl', '-e', KILL_GROUP, String(group)], { timeoutMs: CONNECT_TIMEOUT_MS }).then(
          (r) => r.exitCode === 0 || failed(r.stderr.toString().trim()),
          (error: unknown) => failed(error instanceof Error ? error.message : String(error)),
        );
      }
      killing = true;
      channel.close();
      // The session reports its close once its output is read to the end.
      channel.resume();
      stdout.resume();
    };
    return { stdin: channel, stdout, done, kill };
  }

  onModuleDestroy(): void {
    for (const key of [...this.connections.keys()]) this.dropKey(key);
  }

  /**
   * A pooled connection serves exactly the coordinates it was verified for:
   * the pinned host key and the client key are part of the pool key, so an
   * entry pinning another key can never ride on a connection verified for
   * a different one.
   */
  private key(server: SshTarget): string {
    return JSON.stringify([server.sshUser, server.sshHost, server.sshPort ?? 22, server.sshHostKey, server.sshKeyRef ?? this.defaultKeyPath]);
  }

  private connection(server: SshTarget, timeoutMs: number): Promise<SshConnection> {
    const key = this.key(server);
    const pooled = this.connections.get(key);
    if (pooled) return pooled;
    const connecting = this.connect(server, Math.min(timeoutMs, CONNECT_TIMEOUT_MS)).then((ssh) => {
      // A connection that breaks is forgotten, so the next call reconnects.
      const forget = () => {
        if (this.connections.get(key) === connecting) this.connections.delete(key);
      };
      ssh.connection?.on('close', forget);
      ssh.connection?.on('error', forget);
      return new SshConnection(server.hostname, ssh);
    });
    this.connections.set(key, connecting);
    connecting.catch(() => this.connections.delete(key));
    return connecting;
  }

  private async connect(server: SshTarget, timeoutMs: number): Promise<NodeSSH> {
    if (!server.sshHost || !server.sshUser) throw new Error(`${server.hostname}: no SSH host or user in the inventory`);
    const pinned = server.sshHostKey;
    if (!pinned) throw new HostKeyError(`${server.hostname}: no pinned host key; pin its SHA256 fingerprint in the inventory first`);
    const keyPath = server.sshKeyRef ?? this.defaultKeyPath;
    if (!keyPath) throw new Error(`${server.hostname}: no SSH key (set the server's key or SSH_KEY_PATH)`);
    let seen: string | null = null;
    const ssh = new NodeSSH();
    try {
      await ssh.connect({
        host: server.sshHost,
        port: server.sshPort ?? 22,
        username: server.sshUser,
        privateKeyPath: keyPath,
        readyTimeout: timeoutMs,
        // A host that vanishes without closing the connection is noticed within about 15 s.
        keepaliveInterval: 5_000,
        keepaliveCountMax: 3,
        hostVerifier: (key: Buffer) => {
          seen = hostKeyFingerprint(key);
          return seen === pinned;
        },
      });
    } catch (error) {
      if (seen !== null && seen !== pinned) {
        throw new HostKeyError(`${server.hostname}: host key mismatch: the server offers ${seen}, the inventory pins ${pinned}; refusing to connect`);
      }
      throw new Error(`${server.hostname}: cannot connect over SSH: ${error instanceof Error ? error.message : String(error)}`);
    }
    // Small request/response exchanges: without TCP_NODELAY, Nagle's algorithm
    // and delayed ACKs added about 150 ms to every command.
    ssh.connection?.setNoDelay(true);
    return ssh;
  }

  private dropKey(key: string): void {
    const pooled = this.connections.get(key);
    this.connections.delete(key);
    void pooled?.then((c) => c.dispose()).catch(() => undefined);
  }
}

class RunnerTimeoutError extends Error {}

/** `promise`, or a rejection with `aborted()` as soon as `signal` fires. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined, aborted: () => Error): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(aborted());
  let abort!: () => void;
  const stopped = new Promise<never>((_, reject) => {
    abort = () => reject(aborted());
    signal.addEventListener('abort', abort, { once: true });
  });
  return Promise.race([promise, stopped]).finally(() => signal.removeEventListener('abort', abort));
}

/**
 * One SSH connection and its sessions: runners (idle ones are reused) and
 * streams, at most SESSIONS_PER_CONNECTION at once; a caller that finds
 * none free waits until one is.
 */
class SshConnection {
  private readonly idle: Runner[] = [];
  private sessions = 0;
  private waiters: (() => void)[] = [];
  private nextId = 1;

  constructor(
    private readonly hostname: string,
    private readonly ssh: NodeSSH,
  ) {}

  async runner(timeoutMs: number, signal?: AbortSignal, aborted?: () => Error): Promise<Runner> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (signal?.aborted) throw aborted?.() ?? new Error(`${this.hostname}: aborted`);
      const idle = this.idle.pop();
      if (idle && !idle.closed) return idle;
      if (idle) this.free();
      else if (this.sessions < SESSIONS_PER_CONNECTION) return this.session(() => this.startRunner(deadline - Date.now()));
      else await this.change(deadline, signal);
    }
  }

  /**
   * A runner (an idle one: no new session, no fork of sshd and the user's
   * shell on the server) becomes the command; `group` is its process group
   * on the server, for kill.
   */
  async stream(argv: readonly string[], timeoutMs: number): Promise<{ channel: ClientChannel; stdout: Readable; group: number }> {
    const deadline = Date.now() + timeoutMs;
    const runner = await this.runner(timeoutMs);
    try {
      const became = await runner.become(argv, Math.max(1, deadline - Date.now()));
      became.channel.once('close', () => this.free());
      return became;
    } catch (error) {
      runner.close();
      this.free();
      throw error;
    }
  }

  /** A runner back from a command: kept if it answered, closed (killing its command) if not. */
  release(runner: Runner, reusable: boolean): void {
    if (reusable && !runner.closed) {
      this.idle.push(runner);
      this.notify();
    } else {
      runner.close();
      this.free();
    }
  }

  dispose(): void {
    this.ssh.dispose();
  }

  /** Calls `lost` once if the connection closes or fails; returns the unsubscribe. */
  onLost(lost: () => void): () => void {
    const client = this.ssh.connection;
    if (!client) {
      queueMicrotask(lost);
      return () => undefined;
    }
    client.once('close', lost);
    client.once('error', lost);
    return () => {
      client.off('close', lost);
      client.off('error', lost);
    };
  }

  private async session(open: () => Promise<Runner>): Promise<Runner> {
    this.sessions++;
    try {
      return await open();
    } catch (error) {
      this.free();
      throw error;
    }
  }

  private free(): void {
    this.sessions--;
    this.notify();
  }

  private notify(): void {
    for (const wake of this.waiters.splice(0)) wake();
  }

  /** Waits until a session is released; an abort wakes the caller too (it then stops). */
  private change(deadline: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== wake);
        signal?.removeEventListener('abort', wake);
        reject(new RunnerTimeoutError(`${this.hostname}: every SSH session stayed busy`));
      }, Math.max(0, deadline - Date.now()));
      const wake = () => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== wake);
        signal?.removeEventListener('abort', wake);
        resolve();
      };
      this.waiters.push(wake);
      signal?.addEventListener('abort', wake, { once: true });
    });
  }

  private async startRunner(timeoutMs: number): Promise<Runner> {
    return new Runner(this.hostname, await this.exec(commandLine(['perl', '-e', RUNNER_SCRIPT]), timeoutMs), () => this.nextId++);
  }

  private exec(command: string, timeoutMs: number): Promise<ClientChannel> {
    return new Promise<ClientChannel>((resolve, reject) => {
      const client = this.ssh.connection;
      if (!client) {
        reject(new Error(`${this.hostname}: the connection was closed`));
        return;
      }
      const timer = setTimeout(() => reject(new RunnerTimeoutError(`${this.hostname}: opening an SSH session timed out`)), Math.max(1, timeoutMs));
      client.exec(command, (error, stream) => {
        clearTimeout(timer);
        if (error) reject(new Error(`${this.hostname}: cannot open an SSH session: ${error.message}`));
        else resolve(stream);
      });
    });
  }
}

/** The engine's end of one runner: one command at a time. */
export class Runner {
  closed = false;
  private buffer: Buffer = Buffer.alloc(0);
  /** A `became` reply was read: what comes after it is the command's output, kept as it is for `become`. */
  private handedOver = false;
  private diagnostics = '';
  private pending: { id: number; resolve: (r: RunnerReply) => void; reject: (e: Error) => void } | null = null;

  constructor(
    private readonly hostname: string,
    private readonly stream: ClientChannel,
    private readonly newId: () => number,
  ) {
    stream.on('data', (chunk: Buffer) => this.receive(chunk));
    // The runner itself never writes to stderr unless it cannot run (no perl, a crash).
    stream.stderr.on('data', (chunk: Buffer) => {
      this.diagnostics = (this.diagnostics + chunk.toString()).slice(-2000);
    });
    stream.on('close', this.onClose);
  }

  private readonly onClose = () => {
    this.closed = true;
    const why = this.diagnostics.trim() ? `: ${this.diagnostics.trim()}` : '';
    this.fail(new Error(`${this.hostname}: the connection or its command runner closed while a command was running${why}`));
  };

  /** Runs one command; when `signal` fires, rejects at once with `aborted()` (the caller then closes the runner). */
  run(request: Omit<RunnerRequest, 'id'>, deadlineMs: number, signal?: AbortSignal, aborted?: () => Error): Promise<RunnerReply> {
    if (this.closed) return Promise.reject(new Error(`${this.hostname}: the command runner is closed`));
    const id = this.newId();
    const frame = encodeRequest({ ...request, id });
    return new Promise<RunnerReply>((resolve, reject) => {
      const timer = setTimeout(() => this.fail(new RunnerTimeoutError(`${this.hostname}: no answer`)), deadlineMs);
      const abort = () => this.fail(aborted?.() ?? new Error(`${this.hostname}: aborted`));
      const settle = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', abort);
      };
      this.pending = {
        id,
        resolve: (r) => {
          settle();
          resolve(r);
        },
        reject: (e) => {
          settle();
          reject(e);
        },
      };
      signal?.addEventListener('abort', abort, { once: true });
      this.stream.write(frame);
    });
  }

  close(): void {
    this.closed = true;
    this.stream.close();
  }

  /**
   * Turns this runner into `argv` on its channel (see RUNNER_SCRIPT) and
   * hands the channel over: the runner is gone, the channel is the
   * command's, with whatever it printed after the acknowledgement.
   */
  async become(argv: readonly string[], deadlineMs: number): Promise<{ channel: ClientChannel; stdout: Readable; group: number }> {
    const reply = await this.run({ argv, timeoutMs: 'become' }, deadlineMs);
    if (reply.status !== 'became') throw new Error(`${this.hostname}: cannot start ${argv[0]}: ${reply.stderr.toString().trim()}`);
    const group = Number(reply.stdout.toString());
    if (!Number.isInteger(group) || group <= 1) throw new Error(`${this.hostname}: the runner named no process group for ${argv[0]}`);
    this.closed = true;
    this.stream.removeListener('close', this.onClose);
    // Hand the output over without losing a byte: what came after the acknowledgement, then the rest.
    this.stream.removeAllListeners('data');
    this.stream.pause();
    const stdout = new PassThrough();
    if (this.buffer.length > 0) stdout.write(this.buffer);
    this.buffer = Buffer.alloc(0);
    // A channel that ended already (a short command's whole output came with the acknowledgement) ends `stdout` too: pipe sees to that.
    this.stream.pipe(stdout);
    this.stream.stderr.removeAllListeners('data');
    this.stream.stderr.pause();
    return { channel: this.stream, stdout, group };
  }

  private receive(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    // Output that arrives before `become` takes the channel over is the command's: kept, never read as replies.
    if (this.handedOver) return;
    let decoded: ReturnType<typeof decodeReplies>;
    try {
      decoded = decodeReplies(this.buffer);
    } catch (error) {
      this.fail(new Error(`${this.hostname}: ${(error as Error).message}`));
      this.close();
      return;
    }
    this.buffer = decoded.rest;
    if (decoded.replies.some((r) => r.status === 'became')) this.handedOver = true;
    for (const reply of decoded.replies) {
      const pending = this.pending;
      if (pending && pending.id === reply.id) {
        this.pending = null;
        pending.resolve(reply);
      }
    }
  }

  private fail(error: Error): void {
    const pending = this.pending;
    this.pending = null;
    pending?.reject(error);
  }
}
