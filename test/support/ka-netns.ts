import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Hosts as network namespaces on a bridge (TESTBED.md), for the failover
 * tests: names prefixed `ka`, addresses from the test subnet 10.200.0.0/24,
 * no address on the bridge in the root namespace (the hosts reach only each
 * other; nothing here can collide with other tests' tb0). Everything started
 * is stopped by PID, and the namespaces and bridge removed, by `destroy`.
 */
export class KaNetwork {
  private readonly hosts: string[] = [];
  private readonly processes: ChildProcess[] = [];

  constructor(readonly bridge: string) {}

  static create(bridge = 'ka0'): KaNetwork {
    // A bridge left by a killed earlier run of this very test: ours to remove.
    try {
      execFileSync('ip', ['link', 'del', bridge], { stdio: 'ignore' });
    } catch {
      /* none */
    }
    execFileSync('ip', ['link', 'add', bridge, 'type', 'bridge']);
    execFileSync('ip', ['link', 'set', bridge, 'up']);
    return new KaNetwork(bridge);
  }

  /** A namespace `name` with eth0 at `ip`/24 on the bridge, lo up, and non-local binds allowed (nginx listens on floating IPs it may not hold). */
  addHost(name: string, ip: string): void {
    try {
      execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
    } catch {
      /* none */
    }
    execFileSync('ip', ['netns', 'add', name]);
    this.hosts.push(name);
    const veth = `v${name}`.slice(0, 15);
    execFileSync('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', name]);
    execFileSync('ip', ['link', 'set', veth, 'master', this.bridge, 'up']);
    execFileSync('ip', ['-n', name, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
    execFileSync('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    execFileSync('ip', ['-n', name, 'link', 'set', 'eth0', 'up']);
    execFileSync('ip', ['netns', 'exec', name, 'sysctl', '-q', '-w', 'net.ipv4.ip_nonlocal_bind=1']);
  }

  /** Runs argv inside the namespace in the background, output to `log`. */
  start(host: string, argv: readonly string[], log: string): ChildProcess {
    const out = openSync(log, 'a');
    const child = spawn('ip', ['netns', 'exec', host, ...argv], { stdio: ['ignore', out, out], detached: true });
    this.processes.push(child);
    return child;
  }

  exec(host: string, argv: readonly string[]): { code: number; stdout: string } {
    try {
      return { code: 0, stdout: execFileSync('ip', ['netns', 'exec', host, ...argv], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 }) };
    } catch (error) {
      const e = error as { status?: number; stdout?: string };
      return { code: e.status ?? 1, stdout: String(e.stdout ?? '') };
    }
  }

  /** IPv4 addresses on the host's eth0. */
  addresses(host: string): string[] {
    const out = execFileSync('ip', ['-n', host, '-o', '-4', 'addr', 'show', 'dev', 'eth0'], { encoding: 'utf8' });
    return [...out.matchAll(/ inet (\S+)\//g)].map((m) => m[1]!);
  }

  async destroy(): Promise<void> {
    for (const child of this.processes) {
      if (child.exitCode === null && child.pid) {
        try {
          process.kill(child.pid, 'SIGTERM');
        } catch {
          /* gone */
        }
      }
    }
    await waitFor(async () => this.processes.every((c) => c.exitCode !== null || c.signalCode !== null), 5_000).catch(() => {
      for (const child of this.processes) if (child.exitCode === null && child.pid) process.kill(child.pid, 'SIGKILL');
    });
    for (const host of this.hosts) execFileSync('ip', ['netns', 'del', host]);
    execFileSync('ip', ['link', 'del', this.bridge]);
  }
}

/** Stops a background process by its PID file (keepalived's parent): SIGTERM, then waits for it to go. */
export async function stopByPidFile(pidFile: string, timeoutMs = 5_000): Promise<void> {
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  if (!pid) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  await waitFor(async () => {
    try {
      process.kill(pid, 0);
      return false;
    } catch {
      return true;
    }
  }, timeoutMs);
}

export async function waitFor(probe: () => Promise<boolean> | boolean, timeoutMs: number, what = 'condition'): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await probe()) return (Date.now() - started) / 1000;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A minimal nginx of one dispatcher: answers `name` on every floating IP it may hold (as the engine's vhosts do). */
export function writeDispatcherNginx(dir: string, name: string, ips: readonly string[], hostname: string): string {
  const conf = join(dir, 'nginx.conf');
  const temp = (t: string) => `${t}_temp_path ${join(dir, t)};`;
  writeFileSync(
    conf,
    [
      'worker_processes 1;',
      `pid ${join(dir, 'nginx.pid')};`,
      `error_log ${join(dir, 'error.log')};`,
      'events { worker_connections 64; }',
      'http {',
      '  access_log off;',
      `  ${['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(temp).join(' ')}`,
      '  server {',
      ...ips.map((ip) => `    listen ${ip}:80;`),
      `    server_name ${hostname};`,
      `    location / { return 200 "${name}\\n"; }`,
      '  }',
      '}',
      '',
    ].join('\n'),
  );
  return conf;
}
