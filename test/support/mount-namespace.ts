import { readFileSync } from 'node:fs';
import { startServerProcess, stopProcessTree, waitUntil, type ServerProcess } from './processes.js';

/**
 * A test "machine" whose files sit at the same paths as another's: a mount
 * namespace in which each `target` (a directory every server names alike,
 * e.g. the common home root) shows the server's own `source`. Production
 * servers share one layout (nginx on a dispatcher passes a script's path to
 * PHP on a cloud handler, which must find it at the same path there); on one
 * test machine only a namespace per server gives each its own files behind
 * the same path. Processes of that server (its sshd, nginx, php-fpm) start
 * in it with `{ mountNamespace: ns.pid }`; the namespace lives as long as
 * its holder process.
 */
export interface MountNamespace {
  readonly pid: number;
  readonly process: ServerProcess;
  readonly binds: readonly { source: string; target: string }[];
}

export async function startMountNamespace(logPath: string, binds: readonly { source: string; target: string }[]): Promise<MountNamespace> {
  // Mounts stay private to the namespace (not propagated back to the machine's own).
  const script = 'set -e; while [ $# -gt 0 ]; do mount --bind "$1" "$2"; shift 2; done; exec sleep infinity';
  const holder = await startServerProcess('unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', script, 'sh', ...binds.flatMap((b) => [b.source, b.target])], logPath);
  await waitUntil(
    'the mount namespace',
    async () => {
      const mounts = readFileSync(`/proc/${holder.pid}/mountinfo`, 'utf8');
      return binds.every((b) => mounts.split('\n').some((line) => line.split(' ')[4] === b.target));
    },
    { timeoutMs: 10_000, server: holder },
  );
  return { pid: holder.pid, process: holder, binds };
}

export async function stopMountNamespace(ns: MountNamespace | undefined): Promise<void> {
  if (ns) await stopProcessTree(ns.pid, 'sleep');
}
