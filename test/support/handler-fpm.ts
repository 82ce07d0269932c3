import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { EMPTY_POOL_GENERATION } from '@app/webserver';
import { connect } from 'node:net';
import { join } from 'node:path';
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

/**
 * One FastCGI request (the responder role) to a pool: a unix socket path or
 * `{host, port}` (optionally from `localAddress`); resolves with the
 * response's headers and body as PHP sent them.
 */
export function fastcgiRequest(
  target: string | { host: string; port: number; localAddress?: string },
  script: string,
  params: Record<string, string> = {},
  timeoutMs = 10_000,
): Promise<{ head: string; body: string }> {
  const record = (type: number, content: Buffer) => {
    const header = Buffer.alloc(8);
    header.writeUInt8(1, 0);
    header.writeUInt8(type, 1);
    header.writeUInt16BE(1, 2);
    header.writeUInt16BE(content.length, 4);
    return Buffer.concat([header, content]);
  };
  const length = (n: number) => (n < 128 ? Buffer.from([n]) : Buffer.from([((n >> 24) & 0x7f) | 0x80, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]));
  const pair = (name: string, value: string) => Buffer.concat([length(Buffer.byteLength(name)), length(Buffer.byteLength(value)), Buffer.from(name), Buffer.from(value)]);
  const all = { SCRIPT_FILENAME: script, REQUEST_METHOD: 'GET', SCRIPT_NAME: '/t.php', REQUEST_URI: '/t.php', SERVER_PROTOCOL: 'HTTP/1.1', GATEWAY_INTERFACE: 'CGI/1.1', ...params };
  const body = Buffer.concat(Object.entries(all).map(([k, v]) => pair(k, v)));
  return new Promise((resolve, reject) => {
    const socket = typeof target === 'string' ? connect(target) : connect({ host: target.host, port: target.port, ...(target.localAddress ? { localAddress: target.localAddress } : {}) });
    const timer = setTimeout(() => socket.destroy(new Error(`no FastCGI answer within ${timeoutMs} ms`)), timeoutMs);
    socket.on('connect', () => socket.end(Buffer.concat([record(1, Buffer.from([0, 1, 0, 0, 0, 0, 0, 0])), record(4, body), record(4, Buffer.alloc(0)), record(5, Buffer.alloc(0))])));
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      const data = Buffer.concat(chunks);
      let out = '';
      for (let o = 0; o + 8 <= data.length; o += 8 + data.readUInt16BE(o + 4) + data[o + 6]!) {
        if (data[o + 1] === 6) out += data.subarray(o + 8, o + 8 + data.readUInt16BE(o + 4)).toString();
      }
      const at = out.indexOf('\r\n\r\n');
      resolve(at < 0 ? { head: out, body: '' } : { head: out.slice(0, at), body: out.slice(at + 4) });
    });
  });
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
