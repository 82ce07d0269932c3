import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** A server process started by the testbed, logging into a file. */
export interface ServerProcess {
  readonly pid: number;
  readonly logPath: string;
  /** Why the process is gone (exit code or signal), or undefined while it runs. */
  exitReason(): string | undefined;
}

export interface ServerProcessOptions {
  /** The PID of a process whose mount namespace the server runs in (a test "machine" of its own: see mount-namespace.ts). */
  mountNamespace?: number;
}

/**
 * Starts a long-running server with stdout and stderr appended to `logPath`.
 *
 * The server is wrapped in `setpriv --pdeathsig TERM` (setpriv then execs it,
 * so the PID is the server's own): if the Jest process dies without running
 * global teardown (crash, SIGKILL, Ctrl-C), the kernel sends the server
 * SIGTERM instead of leaving it running.
 */
export async function startServerProcess(
  command: string,
  args: readonly string[],
  logPath: string,
  options: ServerProcessOptions = {},
): Promise<ServerProcess> {
  const log = openSync(logPath, 'a');
  let child: ChildProcess;
  // In another server's mount namespace (see mount-namespace.ts): nsenter joins it and execs, so the PID is still the server's.
  const enter = options.mountNamespace === undefined ? [] : ['nsenter', `--mount=/proc/${options.mountNamespace}/ns/mnt`, '--'];
  try {
    child = spawn(enter.length ? enter[0]! : 'setpriv', [...enter.slice(1), ...(enter.length ? ['setpriv'] : []), '--pdeathsig', 'TERM', '--', command, ...args], {
      detached: false,
      stdio: ['ignore', log, log],
    });
  } finally {
    // The child has its own copy of the descriptor.
    closeSync(log);
  }
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', (error) =>
      reject(new Error(`cannot start ${command}: ${error.message}`, { cause: error })),
    );
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`cannot start ${command}: no PID`);
  // Global teardown stops servers by PID; the handle must not keep Jest alive.
  child.unref();
  return {
    pid,
    logPath,
    exitReason: () => {
      if (child.signalCode !== null) return `killed by ${child.signalCode}`;
      if (child.exitCode !== null) return `exited with code ${child.exitCode}`;
      return undefined;
    },
  };
}

/**
 * Runs a short command (argument vector, no shell) and returns its stdout.
 * Secrets go in `input` (stdin) or `env`, never in `args`: args end up in
 * error messages and in `ps`.
 */
export async function run(
  command: string,
  args: readonly string[],
  options: { timeoutMs?: number; env?: NodeJS.ProcessEnv; input?: string } = {},
): Promise<string> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const child = execFile(
      command,
      args,
      { timeout: timeoutMs, killSignal: 'SIGKILL', env: options.env, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) {
          const why = error.killed
            ? `timed out after ${timeoutMs} ms`
            : typeof error.code === 'number'
              ? `exit code ${error.code}`
              : error.message.split('\n')[0];
          const output = `${stderr}${stdout}`.trim();
          reject(new Error(`${command} ${args.join(' ')}: ${why}${output ? `\n${output}` : ''}`));
          return;
        }
        resolve(stdout);
      },
    );
    // A command that exits without reading its input closes the pipe early;
    // its exit status is what counts, not the EPIPE.
    child.stdin?.on('error', () => {});
    child.stdin?.end(options.input ?? '');
  });
}

/**
 * Polls `probe` until it resolves to anything but false; a probe that throws
 * counts as "not yet" and its last error is reported on timeout. Stops early
 * when the server process is gone, so a server that fails on start does not
 * cost the whole timeout.
 */
export async function waitUntil(
  what: string,
  probe: () => Promise<unknown>,
  options: { timeoutMs: number; intervalMs?: number; server?: ServerProcess },
): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  let lastError = '';
  for (;;) {
    const gone = options.server?.exitReason();
    if (gone !== undefined) throw new Error(`the server ${gone} while waiting for ${what}`);
    try {
      if ((await probe()) !== false) return;
    } catch (error) {
      lastError = error instanceof Error ? error.message : String(error);
    }
    if (Date.now() > deadline) {
      throw new Error(
        `${what} did not succeed within ${options.timeoutMs} ms` +
          (lastError ? `; last attempt: ${lastError}` : ''),
      );
    }
    await sleep(options.intervalMs ?? 100);
  }
}

/** Whether something accepts TCP connections on host:port (default 127.0.0.1). */
export function portAnswers(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.setTimeout(1_000);
    const done = (answers: boolean) => {
      socket.destroy();
      resolve(answers);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    socket.once('timeout', () => done(false));
  });
}

/** The last lines of a log file, or undefined when it is missing or empty. */
export function logTail(path: string, lines = 20): string | undefined {
  if (!existsSync(path)) return undefined;
  const tail = readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  return tail ? `--- last lines of ${path} ---\n${tail}` : undefined;
}

/**
 * An error naming the server that failed to start, with the tails of its
 * logs (the server's own log, and the stdout/stderr file that catches
 * messages from before it opened that log).
 */
export function startFailure(server: string, cause: unknown, ...logPaths: string[]): Error {
  const message = cause instanceof Error ? cause.message : String(cause);
  const tails = logPaths.map((path) => logTail(path)).filter((tail) => tail !== undefined);
  const logs = tails.length > 0 ? tails.join('\n') : `(nothing logged in ${logPaths.join(', ')})`;
  return new Error(`${server} did not start: ${message}\n${logs}`, { cause });
}

/** Whether the PID runs (a zombie waiting to be reaped counts as gone). */
export function isAlive(pid: number): boolean {
  const stat = readProcStat(pid);
  return stat !== undefined && stat.state !== 'Z';
}

/** The PIDs whose parent is `pid`, and their children, recursively. */
export function descendantsOf(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readProcStat(Number(entry));
    if (stat === undefined) continue;
    const siblings = children.get(stat.ppid) ?? [];
    siblings.push(Number(entry));
    children.set(stat.ppid, siblings);
  }
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    for (const child of children.get(queue.shift() as number) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

/**
 * Stops a server and everything it forked: SIGTERM, wait, then SIGKILL for
 * the server and any descendant still alive (nginx workers or sshd sessions
 * would otherwise outlive a killed parent).
 *
 * `marker` must appear in the process's command line (a path from the run's
 * private directory): a PID read back from a state file may by now belong to
 * an unrelated process, which must not be killed.
 */
export async function stopProcessTree(pid: number, marker: string, timeoutMs = 10_000): Promise<void> {
  if (!isAlive(pid) || !commandLine(pid).includes(marker)) return;
  const descendants = descendantsOf(pid);
  signal(pid, 'SIGTERM');
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid) && Date.now() < deadline) await sleep(50);
  if (isAlive(pid)) signal(pid, 'SIGKILL');
  for (const child of descendants) if (isAlive(child)) signal(child, 'SIGKILL');
  while (isAlive(pid) || descendants.some(isAlive)) {
    if (Date.now() > deadline + 5_000) throw new Error(`PID ${pid} survived SIGKILL`);
    await sleep(20);
  }
}

/** SIGKILLs every process (but this one) whose command line contains `marker`. */
export function killProcessesMentioning(marker: string): number[] {
  const killed: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid || !isAlive(pid) || !commandLine(pid).includes(marker)) continue;
    signal(pid, 'SIGKILL');
    killed.push(pid);
  }
  return killed;
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch (error) {
    // Already gone between the check and the signal.
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
}

function readProcStat(pid: number): { state: string; ppid: number } | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid ...": comm may itself contain spaces and parentheses.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0], ppid: Number(fields[1]) };
}
