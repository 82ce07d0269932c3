import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { userInfo } from 'node:os';

/** What serves the local server's shops on the embedded default, or why nothing does. */
export type EmbeddedWebState = { serving: true; port: number } | { serving: false; reason: string };

/** Where the embedded default's nginx and php-fpm keep their files (under the local server's roots). */
export interface EmbeddedWebLayout {
  /** `<var>/hosts/local/web`: configs, logs, temp paths, php-fpm's pid. */
  dir: string;
  /** The dispatcher's nginx conf dir: its `current/*.conf` is included. */
  nginxConfDir: string;
  /** The pid file the pipeline signals (the server's `nginxPidFile`). */
  nginxPidFile: string;
  /** Where php-fpm listens: the local server's private IP, port 9000 (the pipeline's backend). */
  phpHost: string;
}

const SBIN = ['/usr/sbin', '/usr/local/sbin', '/usr/bin', '/sbin'];
const TEMP_PATHS = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'] as const;

/**
 * The embedded default's own nginx and php-fpm, so a newcomer sees the shop
 * itself: run by the engine's user, configs and logs under `var/`, nginx on
 * a free high port (no root needed), php-fpm on the local server's private
 * IP. Started with the engine and stopped with it (and, as children that
 * die with their parent, never left behind by a killed engine).
 */
export class EmbeddedWeb {
  private nginx: ChildProcess | null = null;
  private fpm: ChildProcess | null = null;

  constructor(private readonly layout: EmbeddedWebLayout) {}

  /** Why the shops cannot be served here (a missing program or PHP module), or null. */
  static missing(): string | null {
    const nginx = findBinary(['nginx']);
    const fpm = phpFpmBinary();
    const wanted = [...(nginx ? [] : ['nginx']), ...(fpm ? [] : ['php-fpm'])];
    if (fpm) {
      const modules = spawnSync(fpm, ['-m'], { encoding: 'utf8' }).stdout ?? '';
      if (!/^pdo_sqlite$/m.test(modules)) wanted.push('php-sqlite3');
    }
    return wanted.length === 0 ? null : `install ${wanted.join(' and ')} (apt-get install ${wanted.join(' ')}) and start again to see the shops served here`;
  }

  /** A port for nginx: `preferred` when it is free, else any free high port. */
  static async freePort(preferred: number | null): Promise<number> {
    if (preferred !== null && (await portFree(preferred))) return preferred;
    return new Promise((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen({ port: 0, host: '0.0.0.0' }, () => {
        const { port } = server.address() as { port: number };
        server.close(() => resolve(port));
      });
    });
  }

  /** Starts php-fpm, then nginx (its shops listen where the pipeline's files say); throws with the program's own error when one does not come up. */
  async start(): Promise<void> {
    const { dir } = this.layout;
    for (const sub of ['logs', ...TEMP_PATHS.map((t) => join('temp', t))]) mkdirSync(join(dir, sub), { recursive: true, mode: 0o700 });
    mkdirSync(join(this.layout.nginxConfDir, 'logs'), { recursive: true });
    // A previous engine killed without stopping them: its nginx and php-fpm go first.
    await Promise.all([stopByPidFile(this.layout.nginxPidFile, 'nginx'), stopByPidFile(join(dir, 'php-fpm.pid'), 'php-fpm')]);

    const fpm = phpFpmBinary()!;
    const root = process.getuid?.() === 0;
    const user = userInfo().username;
    writeFileSync(
      join(dir, 'php-fpm.conf'),
      [
        '; Written by the provisioning engine (embedded default) at every start.',
        '[global]',
        `pid = ${join(dir, 'php-fpm.pid')}`,
        `error_log = ${join(dir, 'logs', 'php-fpm.log')}`,
        'daemonize = no',
        '[shops]',
        // PHP runs as the engine's user: it owns the homes and the SQLite tenant databases here.
        ...(root ? [`user = ${user}`, `group = ${user}`] : []),
        `listen = ${this.layout.phpHost}:9000`,
        'pm = ondemand',
        'pm.max_children = 4',
        'catch_workers_output = yes',
        '',
      ].join('\n'),
    );
    this.fpm = spawnChild(fpm, [...(root ? ['-R'] : []), '-F', '-y', join(dir, 'php-fpm.conf')], join(dir, 'logs', 'php-fpm.out'));
    await waitForPort(this.layout.phpHost, 9000, this.fpm, join(dir, 'logs', 'php-fpm.log'));

    const conf = join(dir, 'nginx.conf');
    writeFileSync(conf, this.nginxConf(root ? user : null));
    const nginx = findBinary(['nginx'])!;
    const args = ['-c', conf, '-p', `${dir}/`, '-e', join(dir, 'logs', 'error.log')];
    const test = spawnSync(nginx, [...args, '-t', '-q'], { encoding: 'utf8' });
    if (test.status !== 0) throw new Error(`nginx refused its configuration: ${test.stderr.trim()}`);
    this.nginx = spawnChild(nginx, [...args, '-g', 'daemon off;'], join(dir, 'logs', 'nginx.out'));
    await waitForFile(this.layout.nginxPidFile, this.nginx, join(dir, 'logs', 'error.log'));
  }

  async stop(): Promise<void> {
    await Promise.all([stopChild(this.nginx, 'SIGQUIT'), stopChild(this.fpm, 'SIGQUIT')]);
    this.nginx = null;
    this.fpm = null;
  }

  private nginxConf(user: string | null): string {
    const { dir } = this.layout;
    return [
      '# Written by the provisioning engine (embedded default) at every start: the shops of the local server.',
      ...(user ? [`user ${user};`] : []),
      'worker_processes 1;',
      `pid ${this.layout.nginxPidFile};`,
      `error_log ${join(dir, 'logs', 'error.log')};`,
      'events { worker_connections 256; }',
      'http {',
      '    include /etc/nginx/mime.types;',
      '    default_type application/octet-stream;',
      `    access_log ${join(dir, 'logs', 'access.log')};`,
      ...TEMP_PATHS.map((t) => `    ${t}_temp_path ${join(dir, 'temp', t)};`),
      '    server_names_hash_max_size 65536;',
      '    server_names_hash_bucket_size 128;',
      '    map_hash_max_size 65536;',
      '    map_hash_bucket_size 128;',
      `    include ${join(this.layout.nginxConfDir, 'current')}/*.conf;`,
      '}',
      '',
    ].join('\n');
  }
}

function findBinary(names: readonly string[]): string | null {
  const path = (process.env.PATH ?? '').split(':').filter(Boolean);
  for (const name of names) for (const dir of [...SBIN, ...path]) if (existsSync(join(dir, name))) return join(dir, name);
  return null;
}

/** Debian ships php-fpm8.2 (any version will do). */
function phpFpmBinary(): string | null {
  for (const dir of SBIN) {
    if (!existsSync(dir)) continue;
    const found = readdirSync(dir).filter((f) => /^php-fpm(\d+(\.\d+)?)?$/.test(f)).sort();
    if (found.length > 0) return join(dir, found[found.length - 1]!);
  }
  return null;
}

/** Children die with the engine: `setpriv --pdeathsig` where util-linux has it. */
function spawnChild(binary: string, args: string[], outputFile: string): ChildProcess {
  const setpriv = findBinary(['setpriv']);
  const [command, argv] = setpriv ? [setpriv, ['--pdeathsig', 'TERM', binary, ...args]] : [binary, args];
  const out = spawn('sh', ['-c', 'exec "$@" >>"$0" 2>&1', outputFile, command, ...argv], { stdio: 'ignore' });
  out.unref();
  return out;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host: '0.0.0.0' }, () => server.close(() => resolve(true)));
  });
}

async function waitForPort(host: string, port: number, child: ChildProcess, log: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) break;
    if (await answers(host, port)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`php-fpm did not listen on ${host}:${port}: ${tail(log)}`);
}

async function waitForFile(path: string, child: ChildProcess, log: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) break;
    if (existsSync(path) && readFileSync(path, 'utf8').trim() !== '') return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nginx did not start: ${tail(log)}`);
}

function answers(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function tail(file: string): string {
  return existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').slice(-5).join('\n') : '(no log)';
}

/**
 * Stops what a pid file names if it is that program, and waits until it is
 * gone (it holds the ports the new one needs); a stale pid file is only removed.
 */
async function stopByPidFile(pidFile: string, program: string): Promise<void> {
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  rmSync(pidFile, { force: true });
  if (!Number.isInteger(pid) || pid <= 1 || !commandLine(pid)?.includes(program)) return;
  signal(pid, 'SIGQUIT');
  for (let i = 0; i < 100 && commandLine(pid) !== null; i++) await new Promise((r) => setTimeout(r, 50));
  if (commandLine(pid) !== null) signal(pid, 'SIGKILL');
}

/** Signals a process that may have exited meanwhile (that is what was wanted). */
function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

/** A process's command line, or null when there is no such process (or only its zombie). */
function commandLine(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8') || null;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'ESRCH') return null;
    throw error;
  }
}

function stopChild(child: ChildProcess | null, signal: NodeJS.Signals): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve();
    }, 5_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill(signal);
  });
}
