import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { EMPTY_POOL_GENERATION } from '@app/webserver';
import { join } from 'node:path';
import { fastcgi } from './fastcgi.js';
import { phpFpmBinary } from './php-fpm.js';
import { isAlive, startServerProcess, stopProcessTree, waitUntil, type ServerProcess, type ServerProcessOptions } from './processes.js';

/**
 * A handler's php-fpm master as the engine expects one (run as root): its
 * php-fpm.conf includes `<poolDir>/current/*.conf` (the pool pipeline's
 * live generation) plus a sentinel pool of its own (php-fpm refuses a
 * config without pools), pid file given to the server row as
 * `phpFpmPidFile`. The pipeline may start the master again itself (`-D`)
 * when a reload kills it: `stopHandlerFpm` stops whatever master the pid
 * file names.
 */
export interface HandlerFpm {
  readonly process: ServerProcess;
  readonly dir: string;
  readonly conf: string;
  readonly pidFile: string;
  readonly logPath: string;
  /** The sentinel pool's socket (answers as long as the master runs). */
  readonly sentinel: string;
}

export async function startHandlerFpm(dir: string, poolDir: string, options: { sentinelUser?: string } & ServerProcessOptions = {}): Promise<HandlerFpm> {
  const binary = phpFpmBinary();
  if (!binary) throw new Error('php-fpm is not installed (scripts/ensure-system-packages.sh installs it)');
  if (process.getuid?.() !== 0) throw new Error('a handler php-fpm master runs as root (its pools switch to each install user)');
  mkdirSync(dir, { recursive: true });
  // As the pipeline's first inspect leaves it: `current` on an empty generation (php-fpm refuses an include whose directory is missing).
  mkdirSync(join(poolDir, 'generations', EMPTY_POOL_GENERATION), { recursive: true });
  if (!existsSync(join(poolDir, 'current'))) symlinkSync(`generations/${EMPTY_POOL_GENERATION}`, join(poolDir, 'current'));
  const conf = join(dir, 'php-fpm.conf');
  const pidFile = join(dir, 'php-fpm.pid');
  const logPath = join(dir, 'php-fpm.log');
  const sentinel = join(dir, 'sentinel.sock');
  const user = options.sentinelUser ?? 'www-data';
  writeFileSync(
    conf,
    [
      '[global]',
      `pid = ${pidFile}`,
      `error_log = ${logPath}`,
      'daemonize = no',
      'process_control_timeout = 10s',
      `include = ${join(poolDir, 'current')}/*.conf`,
      '[handler-sentinel]',
      `user = ${user}`,
      `group = ${user}`,
      `listen = ${sentinel}`,
      'pm = ondemand',
      'pm.max_children = 1',
      '',
    ].join('\n'),
  );
  const server = await startServerProcess(binary, ['-F', '-y', conf], join(dir, 'php-fpm.out'), { mountNamespace: options.mountNamespace });
  await waitUntil('php-fpm to start', async () => existsSync(pidFile) && existsSync(sentinel), { timeoutMs: 15_000, server });
  return { process: server, dir, conf, pidFile, logPath, sentinel };
}

/** The pid the master's pid file names now (the pipeline may have started it again), or null. */
export function handlerFpmPid(fpm: HandlerFpm): number | null {
  if (!existsSync(fpm.pidFile)) return null;
  const pid = Number(readFileSync(fpm.pidFile, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 && isAlive(pid) ? pid : null;
}

export async function stopHandlerFpm(fpm: HandlerFpm): Promise<void> {
  const now = handlerFpmPid(fpm);
  if (now !== null && now !== fpm.process.pid) await stopProcessTree(now, fpm.conf);
  await stopProcessTree(fpm.process.pid, fpm.conf);
}

/** The processes the master started (its workers), from /proc. */
export function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Resident memory (kB, from /proc) of the master and every process under it. */
export function masterRssKb(pid: number): number {
  let total = 0;
  const pids = [pid, ...childrenOf(pid)];
  for (const p of pids) {
    try {
      const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      if (m) total += Number(m[1]);
    } catch {
      // Gone meanwhile.
    }
  }
  return total;
}

/** One FastCGI request to a pool: a unix socket path or `{host, port}` (optionally from `localAddress`); see fastcgi.ts. */
export function fastcgiRequest(
  target: string | { host: string; port: number; localAddress?: string },
  script: string,
  params: Record<string, string> = {},
  timeoutMs = 10_000,
): Promise<{ head: string; body: string }> {
  return fastcgi(typeof target === 'string' ? { path: target } : target, script, params, timeoutMs);
}

/**
 * Creates the install's system user as the build saga does (no home made),
 * unless it exists. `system: false` takes a uid from the regular range:
 * Debian's system range (100-999) holds fewer than 900 accounts.
 */
export function createInstallUser(id: number, home: string, options: { system?: boolean } = {}): string {
  const user = `shop${id}`;
  try {
    execFileSync('id', ['-u', user], { stdio: 'ignore' });
  } catch {
    execFileSync('useradd', [...(options.system === false ? [] : ['--system']), '--user-group', '--no-create-home', '--home-dir', home, '--shell', '/usr/sbin/nologin', '--comment', `shop-engine install ${id}`, user]);
  }
  return user;
}

/** Removes a user `createInstallUser` made (only one with its comment). */
export function removeInstallUser(id: number): void {
  const user = `shop${id}`;
  try {
    const entry = execFileSync('getent', ['passwd', user]).toString();
    if (!entry.includes(`shop-engine install ${id}`)) return;
    execFileSync('userdel', [user], { stdio: 'ignore' });
  } catch {
    // Not there.
  }
}
