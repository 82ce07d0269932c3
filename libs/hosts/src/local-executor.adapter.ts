import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { Injectable } from '@nestjs/common';
import { HostTimeoutError } from './host-executor.errors.js';
import { HostExecutor, type RunOptions, type RunResult } from './host-executor.port.js';
import type { ServerRoots } from './server-path.js';

const DEFAULT_TIMEOUT_MS = 60_000;

/**
 * This machine as a server: the embedded default and single-host installs.
 * Commands are spawned directly (no shell), with a minimal environment.
 */
@Injectable()
export class LocalExecutor extends HostExecutor {
  protected exec(server: ServerRoots, argv: readonly string[], options: RunOptions): Promise<RunResult> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    return new Promise((resolve, reject) => {
      const child = spawn(argv[0]!, argv.slice(1), {
        cwd: options.cwd,
        env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C', ...options.env },
        stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      });
      const stdout: Buffer[] = [];
      const stderr: Buffer[] = [];
      child.stdout!.on('data', (c: Buffer) => stdout.push(c));
      child.stderr!.on('data', (c: Buffer) => stderr.push(c));
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new HostTimeoutError(server.hostname, argv, timeoutMs));
      }, timeoutMs);
      child.once('error', (error) => {
        clearTimeout(timer);
        // A missing program is a failed command, as it would be over SSH (exit 127).
        resolve({ exitCode: 127, stdout: '', stderr: `${argv[0]}: ${error.message}` });
      });
      child.once('close', (code) => {
        clearTimeout(timer);
        resolve({ exitCode: code ?? -1, stdout: Buffer.concat(stdout).toString(), stderr: Buffer.concat(stderr).toString() });
      });
      if (child.stdin) {
        // A program may exit without reading its input: that is its answer, not our error.
        child.stdin.on('error', () => undefined);
        child.stdin.end(options.input);
      }
    });
  }

  protected async putFile(_server: ServerRoots, path: string, content: Buffer): Promise<void> {
    await writeFile(path, content, { mode: 0o600, flag: 'wx' });
  }

  protected getFile(_server: ServerRoots, path: string): Promise<Buffer> {
    return readFile(path);
  }
}
