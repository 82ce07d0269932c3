import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NginxServer } from '../test/support/testbed.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The nginx master's worker processes and whether each still accepts connections, read from /proc. */
export function nginxWorkers(master: number): { pid: number; accepting: boolean }[] {
  const children = readFileSync(`/proc/${master}/task/${master}/children`, 'utf8').split(/\s+/).filter(Boolean).map(Number);
  return children.flatMap((pid) => {
    let title: string;
    try {
      title = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
    } catch (error) {
      // It exited since the list was read.
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    return title.includes('worker process') ? [{ pid, accepting: !title.includes('shutting down') }] : [];
  });
}

/**
 * nginx's own reload, as an operator or `systemctl reload` does it
 * (`nginx -s reload`: it reads the config to find the master, which then
 * loads it and starts new workers), timed until a new worker runs and no
 * old one accepts any more: the same end the engine's apply waits for,
 * watched here without the engine's code. Milliseconds.
 */
export async function plainReload(nginx: NginxServer): Promise<number> {
  const p = nginx.prefix;
  const before = new Set(nginxWorkers(nginx.pid).filter((w) => w.accepting).map((w) => w.pid));
  const started = performance.now();
  execFileSync('nginx', ['-c', nginx.confPath, '-p', `${p}/`, '-e', join(p, 'logs/error.log'), '-s', 'reload'], { stdio: 'ignore' });
  for (;;) {
    const now = nginxWorkers(nginx.pid);
    const fresh = now.some((w) => w.accepting && !before.has(w.pid));
    const stale = now.some((w) => w.accepting && before.has(w.pid));
    if (fresh && !stale) return performance.now() - started;
    if (performance.now() - started > 600_000) throw new Error('nginx -s reload: no new workers after 600 s');
    await sleep(10);
  }
}

/** Waits until the workers of an earlier configuration have exited, then a little more: each measured reload starts from the same state. */
export async function quiesce(nginx: NginxServer, settleMs = 2_000): Promise<void> {
  for (let i = 0; i < 1200; i++) {
    const titles = execFileSync('ps', ['-o', 'args=', '--ppid', String(nginx.pid)]).toString();
    if (!titles.includes('shutting down')) break;
    await sleep(100);
  }
  await sleep(settleMs);
}
