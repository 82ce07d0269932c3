import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import { Injectable } from '@nestjs/common';
import { CommandAbortedError, HostTimeoutError } from './host-executor.errors.js';
import { HostExecutor, type RawRunResult, type RunOptions, type StreamingCommand } from './host-executor.port.js';
import type { ServerRoots } from './server-path.js';

const DEFAULT_TIMEOUT_MS = 60_000;
const ENVIRONMENT = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' };

/**
 * This machine as a server: the embedded default and single-host installs.
 * Commands are spawned directly (no shell), with a minimal environment.
 */
@Injectable()
export class LocalExecutor extends HostExecutor {
  readonly transport = 'local' as const;
  protected exec(server: ServerRoots, argv: readonly string[], options: RunOptions): Promise<RawRunResult> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const signal = options.signal;
    return new Promise((resolve, reject) => {
      const child = spawn(argv[0]!, argv.slice(1), {
        cwd: options.cwd,
        env: { ...ENVIRONMENT, ...options.env },
        stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
        // Its own process group, so a timeout kills what it started too (as the SSH runner does).
        detached: true,
      });
      const stdout: Buffer[] = [];
      const stderr: Buffer[] = [];
      child.stdout!.on('data', (c: Buffer) => stdout.push(c));
      child.stderr!.on('data', (c: Buffer) => stderr.push(c));
      const timer = setTimeout(() => {
        killGroup(child);
        reject(new HostTimeoutError(server.hostname, argv, timeoutMs));
      }, timeoutMs);
      // A job that lost its lease: the command and what it started go now, as at the timeout.
      const abort = () => {
        killGroup(child);
        reject(new CommandAbortedError(server.hostname, argv, signal!.reason));
      };
      signal?.addEventListener('abort', abort, { once: true });
      const settle = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', abort);
      };
      child.once('error', (error) => {
        settle();
        // A missing program is a failed command, as it would be over SSH (exit 127).
        resolve({ exitCode: 127, stdout: Buffer.alloc(0), stderr: Buffer.from(`${argv[0]}: ${error.message}`) });
      });
      child.once('close', (code, killedBy) => {
        settle();
        resolve({ exitCode: code ?? 128 + (killedBy ? constants.signals[killedBy] : 0), stdout: Buffer.concat(stdout), stderr: Buffer.concat(stderr) });
      });
      if (child.stdin) {
        // A program may exit without reading its input: that is its answer, not our error.
        child.stdin.on('error', () => undefined);
        child.stdin.end(options.input);
      }
    });
  }

  protected startStream(_server: ServerRoots, argv: readonly string[]): Promise<StreamingCommand> {
    const child = spawn(argv[0]!, argv.slice(1), { env: ENVIRONMENT, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    const stderr: Buffer[] = [];
    child.stderr.on('data', (c: Buffer) => stderr.push(c));
    child.stdin.on('error', () => undefined);
    const done = new Promise<{ exitCode: number; stderr: string }>((resolve) => {
      child.once('error', (error) => resolve({ exitCode: 127, stderr: `${argv[0]}: ${error.message}` }));
      child.once('close', (code, signal) =>
        resolve({ exitCode: code ?? 128 + (signal ? constants.signals[signal] : 0), stderr: Buffer.concat(stderr).toString() }),
      );
    });
    const kill = () => {
      killGroup(child);
      child.stdout.resume();
    };
    return Promise.resolve({ stdin: child.stdin, stdout: child.stdout, done, kill });
  }
}

function killGroup(child: ChildProcess): void {
  try {
    process.kill(-child.pid!, 'SIGKILL');
  } catch {
    child.kill('SIGKILL');
  }
}
