import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

export const ENGINE_MAIN = join(process.cwd(), 'dist/apps/engine/src/main.js');
export const CLI_MAIN = join(process.cwd(), 'dist/apps/cli/src/main.js');

/** A clean environment: what a new user's shell has, nothing of this test run's. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  // FTP off (its BindMounts task would mount in this machine's own mount table) unless a suite turns it on.
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', FTP_ENABLED: 'false', ...extra };
}

export interface EngineProcess {
  child: ChildProcess;
  url: string;
  adminToken: string;
  output: () => string;
  /** SIGTERM, then the exit: its code, or the signal Nest re-raises after closing gracefully. */
  stop(): Promise<number | NodeJS.Signals | null>;
}

interface StartedProcess<T> {
  child: ChildProcess;
  found: T;
  output: () => string;
  exited: Promise<number | NodeJS.Signals | null>;
}

/**
 * Starts the built engine and waits until its output (stdout and stderr)
 * yields what `find` looks for; fails with the output when it exits first or
 * `timeoutMs` passes.
 */
function startEngineProcess<T>(
  cwd: string,
  env: NodeJS.ProcessEnv,
  what: string,
  find: (output: string) => T | null,
  timeoutMs: number,
): Promise<StartedProcess<T>> {
  const child = spawn(process.execPath, [ENGINE_MAIN], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const exited = new Promise<number | NodeJS.Signals | null>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal)),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the engine gave no ${what} in ${timeoutMs} ms:\n${output}`));
    }, timeoutMs);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const found = find(output);
      if (found !== null) {
        clearTimeout(timer);
        resolve({ child, found, output: () => output, exited });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the engine exited with ${code} before its ${what}:\n${output}`));
    });
  });
}

/** Starts the built engine (`npm start`'s command) and waits for its banner. */
export async function spawnEngine(cwd: string, env: NodeJS.ProcessEnv, timeoutMs = 30_000): Promise<EngineProcess> {
  const started = await startEngineProcess(
    cwd,
    env,
    'banner',
    (output) => {
      const url = /API {10}(http:\/\/\S+)\/v1/.exec(output)?.[1];
      const adminToken = /Admin token {2}(spe_\S+)/.exec(output)?.[1];
      return url && adminToken ? { url, adminToken } : null;
    },
    timeoutMs,
  );
  return {
    child: started.child,
    ...started.found,
    output: started.output,
    stop: async () => {
      started.child.kill('SIGTERM');
      return started.exited;
    },
  };
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
export async function spawnWorker(env: NodeJS.ProcessEnv, timeoutMs = 30_000): Promise<WorkerProcess> {
  const started = await startEngineProcess(
    process.cwd(),
    { ...env, ENGINE_ROLES: 'worker' },
    'worker start',
    (output) => /worker (\S+) started/.exec(output)?.[1] ?? null,
    timeoutMs,
  );
  return { child: started.child, owner: started.found, output: started.output, exited: started.exited };
}

export interface ApiProcess {
  child: ChildProcess;
  url: string;
  output: () => string;
  exited: Promise<number | NodeJS.Signals | null>;
}

/** Starts the built engine with only the api role (any catalog) and waits until it serves HTTP. */
export async function spawnApi(env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<ApiProcess> {
  const started = await startEngineProcess(
    process.cwd(),
    { ...env, ENGINE_ROLES: 'api' },
    'API address',
    (output) => /API {10}(http:\/\/\S+)\/v1/.exec(output)?.[1] ?? null,
    timeoutMs,
  );
  return { child: started.child, url: started.found, output: started.output, exited: started.exited };
}
