import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { NewServer } from '@app/catalog';
import type { ServerRoots } from '@app/hosts';
import type { SshdServer } from './testbed.js';

/** A server whose filesystem roots are fresh directories under `base` (tests and benchmarks). */
export function tempServerRoots(base: string, hostname: string): ServerRoots {
  const root = (name: string) => {
    const dir = join(base, 'srv', name);
    mkdirSync(dir, { recursive: true });
    return dir;
  };
  return {
    hostname,
    homeRoot: root('home'),
    sharedCodeRoot: root('shared_codes'),
    nginxConfDir: root('nginx'),
    cronDir: root('cron.d'),
    certsRoot: root('certs'),
    phpFpmPoolDir: null,
  };
}

/**
 * An inventory row for a test server whose roots are fresh directories under
 * `<dir>/srv`: reached over SSH through `sshd`, or this machine (`local`)
 * when sshd is null. Its nginx pid file does not exist unless a test starts
 * an nginx for it: the pipeline finds "not running" and never signals the
 * machine's own nginx.
 */
export function testServer(dir: string, hostname: string, roles: NewServer['roles'], sshd: SshdServer | null, extra: Partial<NewServer> = {}): NewServer {
  const ssh = sshd
    ? { transport: 'ssh' as const, sshHost: sshd.host, sshPort: sshd.port, sshUser: sshd.user, sshKeyRef: sshd.privateKeyPath, sshHostKey: sshd.hostKeyFingerprint }
    : { transport: 'local' as const, sshHost: null, sshPort: null, sshUser: null, sshKeyRef: null, sshHostKey: null };
  const { hostname: _, ...roots } = tempServerRoots(dir, hostname);
  return { hostname, roles, privateIp: null, ...ssh, ...roots, state: 'active', capacity: null, dbOptionsFile: null, nginxPidFile: join(dir, 'srv/nginx/nginx.pid'), ...extra };
}

/** A code group made by hand: `<sharedCodeRoot>/<name>` holding the release of `revision` (as the clone job lays it out). */
export function checkoutGroup(repoPath: string, sharedCodeRoot: string, name: string, revision: string): string {
  const dir = join(sharedCodeRoot, name);
  // The layout the clone job makes (code-layout.ts): the release of `revision` in releases/<commit>.
  const commit = execFileSync('git', ['-C', repoPath, 'rev-parse', '--verify', `${revision}^{commit}`], { encoding: 'utf8' }).trim();
  const release = join(dir, 'releases', commit);
  mkdirSync(release, { recursive: true });
  execFileSync('sh', ['-c', 'git -C "$1" archive --format=tar "$2" | tar -x -C "$3"', 'sh', repoPath, commit, release]);
  return dir;
}
