import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

export const ENGINE_MAIN = join(process.cwd(), 'dist/apps/engine/src/main.js');
export const CLI_MAIN = join(process.cwd(), 'dist/apps/cli/src/main.js');

/** A clean environment: what a new user's shell has, nothing of this test run's. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', ...extra };
}

export interface EngineProcess {
  child: ChildProcess;
  url: string;
  adminToken: string;
  output: () => string;
  /** SIGTERM, then the exit: its code, or the signal Nest re-raises after closing gracefully. */
  stop(): Promise<number | NodeJS.Signals | null>;
}

/** Starts the built engine (`npm start`'s command) and waits for its banner. */
export function spawnEngine(cwd: string, env: NodeJS.ProcessEnv, timeoutMs = 30_000): Promise<EngineProcess> {
  const child = spawn(process.execPath, [ENGINE_MAIN], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const exited = new Promise<number | NodeJS.Signals | null>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal)),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the engine printed no banner in ${timeoutMs} ms:\n${output}`));
    }, timeoutMs);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const url = /API {10}(http:\/\/\S+)\/v1/.exec(output)?.[1];
      const adminToken = /Admin token {2}(spe_\S+)/.exec(output)?.[1];
      if (url && adminToken) {
        clearTimeout(timer);
        resolve({
          child,
          url,
          adminToken,
          output: () => output,
          stop: async () => {
            child.kill('SIGTERM');
            return exited;
          },
        });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the engine exited with ${code} before its banner:\n${output}`));
    });
  });
}

/** Runs the built CLI (`npm run snippet -- ...`) and collects its output. */
export function runCli(
  args: string[],
  cwd: string,
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI_MAIN, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

export interface WorkerProcess {
  child: ChildProcess;
  /** The queue owner id this worker claims under. */
  owner: string;
  output: () => string;
  exited: Promise<number | NodeJS.Signals | null>;
}

/** Starts the built engine with only the worker role and waits until its worker loop runs. */
export function spawnWorker(env: NodeJS.ProcessEnv, timeoutMs = 30_000): Promise<WorkerProcess> {
  const child = spawn(process.execPath, [ENGINE_MAIN], {
    cwd: process.cwd(),
    env: { ...env, ENGINE_ROLES: 'worker' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<number | NodeJS.Signals | null>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal)),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the worker did not start in ${timeoutMs} ms:\n${output}`));
    }, timeoutMs);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const owner = /worker (\S+) started/.exec(output)?.[1];
      if (owner) {
        clearTimeout(timer);
        resolve({ child, owner, output: () => output, exited });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the worker exited with ${code} before starting:\n${output}`));
    });
  });
}
