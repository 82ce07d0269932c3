import { createHash } from 'node:crypto';
import { Injectable, type OnModuleDestroy } from '@nestjs/common';
import { NodeSSH } from 'node-ssh';
import { HostTimeoutError } from './host-executor.errors.js';
import { HostExecutor, type RunOptions, type RunResult } from './host-executor.port.js';
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
const CONNECT_TIMEOUT_MS = 10_000;

/** The OpenSSH SHA256 fingerprint of a raw host key. */
export function hostKeyFingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/**
 * Servers over SSH: one pooled connection per server (reconnected after a
 * failure), the host key pinned (a mismatch is a hard error), a timeout on
 * every call. Commands go as one quoted command line, built by commandLine().
 */
@Injectable()
export class SshExecutor extends HostExecutor implements OnModuleDestroy {
  private readonly connections = new Map<string, Promise<NodeSSH>>();

  constructor(private readonly defaultKeyPath: string | null = null) {
    super();
  }

  protected async exec(server: SshTarget, argv: readonly string[], options: RunOptions): Promise<RunResult> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const env = Object.entries(options.env ?? {}).map(([k, v]) => `${k}=${v}`);
    // `env -C dir NAME=value cmd ...`: working directory and variables without a shell of ours.
    const full = env.length > 0 || options.cwd ? ['env', ...(options.cwd ? ['-C', options.cwd] : []), ...env, ...argv] : [...argv];
    const ssh = await this.connection(server, timeoutMs);
    return new Promise<RunResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        // A hung command or a dead host: drop the connection so the next call starts clean.
        this.drop(server);
        reject(new HostTimeoutError(server.hostname, argv, timeoutMs));
      }, timeoutMs);
      ssh.connection!.exec(commandLine(full), (error, stream) => {
        if (error) {
          clearTimeout(timer);
          this.drop(server);
          reject(new Error(`${server.hostname}: ${error.message}`));
          return;
        }
        const stdout: Buffer[] = [];
        const stderr: Buffer[] = [];
        stream.on('data', (c: Buffer) => stdout.push(c));
        stream.stderr.on('data', (c: Buffer) => stderr.push(c));
        stream.on('close', (code: number | null) => {
          clearTimeout(timer);
          resolve({ exitCode: code ?? -1, stdout: Buffer.concat(stdout).toString(), stderr: Buffer.concat(stderr).toString() });
        });
        stream.end(options.input);
      });
    });
  }

  protected async putFile(server: SshTarget, path: string, content: Buffer): Promise<void> {
    const sftp = await (await this.connection(server, DEFAULT_TIMEOUT_MS)).requestSFTP();
    try {
      await new Promise<void>((resolve, reject) =>
        sftp.writeFile(path, content, { mode: 0o600, flag: 'wx' }, (e) => (e ? reject(new Error(`${server.hostname}: writing ${path}: ${e.message}`)) : resolve())),
      );
    } finally {
      sftp.end();
    }
  }

  protected async getFile(server: SshTarget, path: string): Promise<Buffer> {
    const sftp = await (await this.connection(server, DEFAULT_TIMEOUT_MS)).requestSFTP();
    try {
      return await new Promise<Buffer>((resolve, reject) =>
        sftp.readFile(path, (e, data) => (e ? reject(new Error(`${server.hostname}: reading ${path}: ${e.message}`)) : resolve(data))),
      );
    } finally {
      sftp.end();
    }
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

  private connection(server: SshTarget, timeoutMs: number): Promise<NodeSSH> {
    const key = this.key(server);
    const pooled = this.connections.get(key);
    if (pooled) return pooled;
    const connecting = this.connect(server, Math.min(timeoutMs, CONNECT_TIMEOUT_MS));
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
        keepaliveInterval: 15_000,
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
    // A connection that breaks is forgotten, so the next call reconnects.
    ssh.connection?.on('close', () => this.connections.delete(this.key(server)));
    ssh.connection?.on('error', () => this.connections.delete(this.key(server)));
    return ssh;
  }

  private drop(server: SshTarget): void {
    this.dropKey(this.key(server));
  }

  private dropKey(key: string): void {
    const pooled = this.connections.get(key);
    this.connections.delete(key);
    void pooled?.then((ssh) => ssh.dispose()).catch(() => undefined);
  }
}
