import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HostKeyError, HostTimeoutError, SshExecutor, type SshTarget } from '@app/hosts';
import { executorContract } from '../support/executor-contract.js';
import { tempServerRoots } from '../support/server-roots.js';
import { startSshd, stopSshd } from '../support/sshd.js';
import { readTestbed } from '../support/testbed.js';

const base = mkdtempSync(join(tmpdir(), 'ssh-executor-'));
chmodSync(base, 0o755);
const executor = new SshExecutor();

function target(overrides: Partial<SshTarget> = {}): SshTarget {
  const { sshd } = readTestbed();
  return {
    ...tempServerRoots(base, 'dispatch-test.example.net'),
    sshHost: sshd.host,
    sshPort: sshd.port,
    sshUser: sshd.user,
    sshKeyRef: sshd.privateKeyPath,
    sshHostKey: sshd.hostKeyFingerprint,
    ...overrides,
  };
}

executorContract(
  'SshExecutor (real sshd)',
  async () => {
    const outside = join(base, 'outside');
    mkdirSync(outside);
    return { executor, server: target(), outside };
  },
  async () => {
    executor.onModuleDestroy();
    rmSync(base, { recursive: true, force: true });
  },
);

/** Successful logins sshd has logged so far. */
const logins = (log: string) => (readFileSync(log, 'utf8').match(/Accepted publickey/g) ?? []).length;

describe('SshExecutor connections', () => {
  // The contract's teardown ran before this block: what these tests open on the shared executor is closed here.
  afterAll(() => executor.onModuleDestroy());

  it('refuses a host whose key differs from the pinned one, and a host with none pinned', async () => {
    // A connection verified for the right key is open: the wrong pin must not ride on it.
    await executor.mustRun(target(), ['true']);
    const wrong = target({ hostname: 'impostor.example.net', sshHostKey: 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' });
    await expect(executor.run(wrong, ['true'])).rejects.toBeInstanceOf(HostKeyError);
    await expect(executor.run(wrong, ['true'])).rejects.toThrow(/host key mismatch: the server offers SHA256:.* the inventory pins SHA256:AAAA/);
    await expect(executor.run(target({ sshHostKey: null, sshPort: 1 }), ['true'])).rejects.toThrow(/no pinned host key/);
  });

  it('reuses one connection per server, for concurrent commands and after a timeout', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ssh-pool-'));
    const sshd = await startSshd(join(dir, 's'));
    const own = new SshExecutor();
    try {
      const server = target({ hostname: 'pooled.example.net', sshPort: sshd.port, sshKeyRef: sshd.privateKeyPath, sshHostKey: sshd.hostKeyFingerprint });
      const loginsBefore = logins(join(dir, 's', 'sshd.log'));
      for (let i = 0; i < 10; i++) expect(await own.mustRun(server, ['echo', String(i)])).toBe(`${i}\n`);
      // More commands at once than runners per connection: the rest wait for a free runner.
      const outputs = await Promise.all(Array.from({ length: 20 }, (_, i) => own.mustRun(server, ['sh', '-c', 'sleep 0.2; echo $1', 'sh', String(i)])));
      expect(outputs).toEqual(Array.from({ length: 20 }, (_, i) => `${i}\n`));
      // A command that times out is killed on the server; the connection stays.
      await expect(own.run(server, ['sh', '-c', 'echo $$ > "$1"; exec sleep 30', 'sh', join(dir, 'sleeper.pid')], { timeoutMs: 300 })).rejects.toBeInstanceOf(HostTimeoutError);
      const pid = Number(readFileSync(join(dir, 'sleeper.pid'), 'utf8'));
      expect(() => process.kill(pid, 0)).toThrow();
      expect(await own.mustRun(server, ['echo', 'after'])).toBe('after\n');
      expect(logins(join(dir, 's', 'sshd.log')) - loginsBefore).toBe(1);
    } finally {
      own.onModuleDestroy();
      await stopSshd(sshd);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('fails within its timeout, naming the server, when the server goes down; works again when it is back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ssh-down-'));
    let sshd = await startSshd(join(dir, 'a'));
    const own = new SshExecutor();
    try {
      const server = target({ hostname: 'flaky.example.net', sshPort: sshd.port, sshKeyRef: sshd.privateKeyPath, sshHostKey: sshd.hostKeyFingerprint });
      expect(await own.mustRun(server, ['echo', 'up'])).toBe('up\n');
      await stopSshd(sshd);
      const started = Date.now();
      await expect(own.run(server, ['echo', 'still there?'], { timeoutMs: 2_000 })).rejects.toThrow(/flaky\.example\.net/);
      expect(Date.now() - started).toBeLessThan(4_000);
      sshd = await startSshd(join(dir, 'b'));
      const back = { ...server, sshPort: sshd.port, sshKeyRef: sshd.privateKeyPath, sshHostKey: sshd.hostKeyFingerprint };
      expect(await own.mustRun(back, ['echo', 'back'])).toBe('back\n');
    } finally {
      own.onModuleDestroy();
      await stopSshd(sshd).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
