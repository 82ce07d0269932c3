import { execFile } from 'node:child_process';
import type { NodeNetwork } from './ip-manager.js';

const ENVIRONMENT = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' };

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

function run(argv: readonly string[], timeoutMs: number): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(argv[0]!, argv.slice(1), { env: ENVIRONMENT, timeout: timeoutMs, killSignal: 'SIGKILL' }, (error, stdout, stderr) => {
      const code = error ? (typeof (error as { code?: unknown }).code === 'number' ? ((error as { code: number }).code) : 127) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) || (error && code === 127 ? error.message : '') });
    });
  });
}

async function mustRun(argv: readonly string[], timeoutMs = 5_000): Promise<string> {
  const r = await run(argv, timeoutMs);
  if (r.code !== 0) throw new Error(`${argv.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

/**
 * The node's interface through iproute2, iputils-ping and arping (Debian
 * packages the server check requires). Floating IPs are added as /32: they
 * route through the interface's own subnet, and a /32 never adds a second
 * connected route.
 */
export class LinuxNetwork implements NodeNetwork {
  constructor(private readonly iface: string) {}

  async holds(ip: string): Promise<boolean> {
    const out = await mustRun(['ip', '-o', '-4', 'addr', 'show', 'dev', this.iface]);
    return out.split('\n').some((line) => line.includes(` inet ${ip}/`));
  }

  async answersElsewhere(ip: string): Promise<boolean> {
    // Both at once, short timeouts: a host that drops ICMP still answers ARP on the segment.
    const [ping, arp] = await Promise.all([
      run(['ping', '-n', '-q', '-c', '1', '-W', '0.5', ip], 2_000),
      run(['arping', '-q', '-c', '1', '-w', '0.5', '-i', this.iface, ip], 2_000),
    ]);
    return ping.code === 0 || arp.code === 0;
  }

  async add(ip: string): Promise<void> {
    const r = await run(['ip', 'addr', 'add', `${ip}/32`, 'dev', this.iface], 5_000);
    // Added by a concurrent notify of the same event: what we wanted.
    if (r.code !== 0 && !/File exists/.test(r.stderr)) throw new Error(`ip addr add ${ip}/32 dev ${this.iface} exited ${r.code}: ${r.stderr.trim()}`);
  }

  async announce(ip: string): Promise<void> {
    // Unsolicited ARP (gratuitous), source and target the IP: neighbours update their caches now, not at expiry.
    await mustRun(['arping', '-q', '-U', '-c', '2', '-w', '1', '-i', this.iface, '-S', ip, ip], 5_000).catch(async (error: unknown) => {
      // arping exits 1 when nobody answers an unsolicited ARP, which is the normal case: only a missing arping is an error.
      if (String(error).includes('exited 127')) throw error;
    });
  }

  async remove(ip: string): Promise<void> {
    const r = await run(['ip', 'addr', 'del', `${ip}/32`, 'dev', this.iface], 5_000);
    if (r.code !== 0 && !/Cannot assign requested address|not found/i.test(r.stderr)) throw new Error(`ip addr del ${ip}/32 dev ${this.iface} exited ${r.code}: ${r.stderr.trim()}`);
  }
}
