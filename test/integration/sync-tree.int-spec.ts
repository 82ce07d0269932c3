import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HostTimeoutError, LocalExecutor, SshExecutor, syncTree, UnsafePathError, type ServerRoots, type SshTarget, type SyncEnd } from '@app/hosts';
import { tempServerRoots } from '../support/server-roots.js';
import { startSshd, stopSshd } from '../support/sshd.js';
import type { SshdServer } from '../support/testbed.js';

/**
 * Two SSH test servers, each an sshd of its own on its own loopback address
 * with its own filesystem roots; the engine relays rsync between them.
 */
const base = mkdtempSync(join(tmpdir(), 'sync-tree-'));
chmodSync(base, 0o755);
const ssh = new SshExecutor();
const local = new LocalExecutor();
let sshdA: SshdServer;
let sshdB: SshdServer;
let a: SyncEnd & { server: SshTarget };
let b: SyncEnd & { server: SshTarget };

function sshEnd(sshd: SshdServer, hostname: string, dir: string): SyncEnd & { server: SshTarget } {
  return {
    executor: ssh,
    server: {
      ...tempServerRoots(dir, hostname),
      sshHost: sshd.host,
      sshPort: sshd.port,
      sshUser: sshd.user,
      sshKeyRef: sshd.privateKeyPath,
      sshHostKey: sshd.hostKeyFingerprint,
    },
  };
}

beforeAll(async () => {
  [sshdA, sshdB] = await Promise.all([startSshd(join(base, 'sshd-a'), '127.0.0.2'), startSshd(join(base, 'sshd-b'), '127.0.0.3')]);
  a = sshEnd(sshdA, 'dispatch-a.example.net', join(base, 'a'));
  b = sshEnd(sshdB, 'dispatch-b.example.net', join(base, 'b'));
});

afterAll(async () => {
  ssh.onModuleDestroy();
  await Promise.all([sshdA && stopSshd(sshdA), sshdB && stopSshd(sshdB)]);
  rmSync(base, { recursive: true, force: true });
});

/** A shared checkout with the kinds of entries a build produces. */
function buildSourceTree(server: ServerRoots, name: string): string {
  const root = join(server.sharedCodeRoot, name);
  mkdirSync(join(root, 'heavymetal/lib'), { recursive: true });
  mkdirSync(join(root, 'html/empty'), { recursive: true });
  writeFileSync(join(root, 'heavymetal/lib/run.sh'), '#!/bin/sh\necho run\n');
  chmodSync(join(root, 'heavymetal/lib/run.sh'), 0o750);
  writeFileSync(join(root, 'heavymetal/config.php'), '<?php // secret\n');
  chmodSync(join(root, 'heavymetal/config.php'), 0o640);
  writeFileSync(join(root, 'html/owned.txt'), 'owned by nobody\n');
  chownSync(join(root, 'html/owned.txt'), 65534, 65534);
  symlinkSync('../heavymetal/lib', join(root, 'html/lib'));
  symlinkSync('/etc/hostname', join(root, 'html/absolute'));
  chmodSync(join(root, 'html'), 0o711);
  return root;
}

describe('syncTree (rsync between two SSH test servers)', () => {
  it('copies symlinks as symlinks with owners and modes, and deletes only inside the synced path', async () => {
    const source = buildSourceTree(a.server, 'group1');
    const dest = join(b.server.sharedCodeRoot, 'group1');
    // Stale entries inside the synced path, and neighbours outside it.
    mkdirSync(join(dest, 'heavymetal/old'), { recursive: true });
    writeFileSync(join(dest, 'stale.txt'), 'stale');
    mkdirSync(join(b.server.sharedCodeRoot, 'group2'));
    writeFileSync(join(b.server.sharedCodeRoot, 'group2/keep.txt'), 'keep');
    writeFileSync(join(b.server.sharedCodeRoot, 'group1.txt'), 'keep');

    await syncTree(a, b, source);

    expect(readFileSync(join(dest, 'heavymetal/lib/run.sh'), 'utf8')).toBe('#!/bin/sh\necho run\n');
    expect(lstatSync(join(dest, 'heavymetal/lib/run.sh')).mode & 0o7777).toBe(0o750);
    expect(lstatSync(join(dest, 'heavymetal/config.php')).mode & 0o7777).toBe(0o640);
    expect(lstatSync(join(dest, 'html')).mode & 0o7777).toBe(0o711);
    expect(lstatSync(join(dest, 'html/empty')).isDirectory()).toBe(true);
    const owned = lstatSync(join(dest, 'html/owned.txt'));
    expect([owned.uid, owned.gid]).toEqual([65534, 65534]);
    expect(lstatSync(join(dest, 'html/lib')).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(dest, 'html/lib'))).toBe('../heavymetal/lib');
    expect(readlinkSync(join(dest, 'html/absolute'))).toBe('/etc/hostname');
    expect(existsSync(join(dest, 'stale.txt'))).toBe(false);
    expect(existsSync(join(dest, 'heavymetal/old'))).toBe(false);
    expect(readFileSync(join(b.server.sharedCodeRoot, 'group2/keep.txt'), 'utf8')).toBe('keep');
    expect(readFileSync(join(b.server.sharedCodeRoot, 'group1.txt'), 'utf8')).toBe('keep');

    // What the source drops is dropped on the next sync; a changed file is updated.
    unlinkSync(join(source, 'html/absolute'));
    writeFileSync(join(source, 'heavymetal/config.php'), '<?php // changed\n');
    await syncTree(a, b, source);
    expect(existsSync(join(dest, 'html/absolute'))).toBe(false);
    expect(readFileSync(join(dest, 'heavymetal/config.php'), 'utf8')).toBe('<?php // changed\n');
  });

  it('lands a path under the same root of the other server, and syncs a single file', async () => {
    const home = join(a.server.homeRoot, 'shop1');
    mkdirSync(join(home, 'conf'), { recursive: true });
    writeFileSync(join(home, 'conf/settings.ini'), 'x=1\n');
    chmodSync(join(home, 'conf/settings.ini'), 0o600);
    await syncTree(a, b, join(home, 'conf/settings.ini'));
    const copied = join(b.server.homeRoot, 'shop1/conf/settings.ini');
    expect(readFileSync(copied, 'utf8')).toBe('x=1\n');
    expect(lstatSync(copied).mode & 0o7777).toBe(0o600);
  });

  it('works between this machine and an SSH server, both ways', async () => {
    const here: SyncEnd = { executor: local, server: tempServerRoots(join(base, 'local'), 'localhost') };
    const source = buildSourceTree(here.server, 'group-local');
    await syncTree(here, b, source);
    expect(readlinkSync(join(b.server.sharedCodeRoot, 'group-local/html/lib'))).toBe('../heavymetal/lib');
    rmSync(source, { recursive: true });
    await syncTree(b, here, join(b.server.sharedCodeRoot, 'group-local'));
    expect(lstatSync(join(source, 'heavymetal/lib/run.sh')).mode & 0o7777).toBe(0o750);
  });

  it('refuses a root itself, paths outside the roots, escapes through symlinks and words rsync would escape; nothing is written', async () => {
    const before = readdir(b.server.sharedCodeRoot);
    await expect(syncTree(a, b, a.server.sharedCodeRoot)).rejects.toThrow(/is the root/);
    await expect(syncTree(a, b, '/etc')).rejects.toBeInstanceOf(UnsafePathError);
    await expect(syncTree(a, b, `${a.server.sharedCodeRoot}/group1/../../..`)).rejects.toThrow(/contains \.\./);
    mkdirSync(join(a.server.sharedCodeRoot, 'with space'));
    await expect(syncTree(a, b, join(a.server.sharedCodeRoot, 'with space'))).rejects.toThrow(/rsync would escape/);
    await expect(syncTree(a, b, join(a.server.sharedCodeRoot, '$(touch x)'))).rejects.toThrow(/rsync would escape/);
    symlinkSync('/etc', join(a.server.sharedCodeRoot, 'escape'));
    await expect(syncTree(a, b, join(a.server.sharedCodeRoot, 'escape'))).rejects.toThrow(/resolves through a symlink|is a symlink/);
    // The destination side is checked on the destination server too.
    mkdirSync(join(a.server.sharedCodeRoot, 'trap'));
    symlinkSync('/tmp', join(b.server.sharedCodeRoot, 'trap'));
    await expect(syncTree(a, b, join(a.server.sharedCodeRoot, 'trap'))).rejects.toThrow(/resolves through a symlink|is a symlink/);
    unlinkSync(join(b.server.sharedCodeRoot, 'trap'));
    await expect(syncTree(a, b, join(a.server.sharedCodeRoot, 'missing'))).rejects.toThrow(/does not exist on dispatch-a\.example\.net/);
    expect(readdir(b.server.sharedCodeRoot)).toEqual(before);
  });

  it('stops at its timeout, and fails naming both servers when the receiving server dies mid-transfer', async () => {
    const dir = join(base, 'c');
    const sshdC = await startSshd(join(dir, 'sshd'), '127.0.0.4');
    const c = sshEnd(sshdC, 'dispatch-c.example.net', dir);
    try {
      const source = join(a.server.homeRoot, 'big');
      mkdirSync(source);
      // 256 MiB that compresses nowhere near instantly over the relay: enough to be mid-transfer.
      execFileSync('head', ['-c', String(256 * 1024 * 1024), '/dev/urandom'], { stdio: ['ignore', openSync(join(source, 'blob'), 'w'), 'ignore'] });
      const started = Date.now();
      await expect(syncTree(a, c, source, { timeoutMs: 300 })).rejects.toBeInstanceOf(HostTimeoutError);
      expect(Date.now() - started).toBeLessThan(5_000);
      // Nothing of either rsync is left running.
      await waitForNoRsync(source);

      const syncing = syncTree(a, c, source);
      const failed = expect(syncing).rejects.toThrow(/sync .*big from dispatch-a\.example\.net to dispatch-c\.example\.net failed/);
      // Mid-transfer: the receiver has started writing the file.
      const destDir = join(c.server.homeRoot, 'big');
      for (let i = 0; i < 200 && !(existsSync(destDir) && readdirSync(destDir).some((f) => f.startsWith('.blob.'))); i++) await new Promise((r) => setTimeout(r, 25));
      await stopSshd(sshdC);
      await failed;
      await waitForNoRsync(source);
    } finally {
      await stopSshd(sshdC).catch(() => undefined);
    }
  });
});

/** Waits until no rsync process names `path` (both ends were stopped). */
async function waitForNoRsync(path: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    const running = spawnSync('pgrep', ['-f', `rsync.*${path}`]).status === 0;
    if (!running) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`an rsync for ${path} is still running`);
}

function readdir(dir: string): string[] {
  return (existsSync(dir) ? readdirSync(dir) : []).sort();
}
