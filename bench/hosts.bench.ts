import 'reflect-metadata';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SshExecutor, type SshTarget } from '@app/hosts';
import { tempServerRoots } from '../test/support/server-roots.js';
import { runSsh, startSshd, stopSshd } from '../test/support/sshd.js';

/**
 * npm run bench -- hosts
 *
 * Against a private sshd on loopback: round trip of a no-op command over the
 * pooled connection, the same with a new `ssh` process per command, and
 * building 500 symlinks on the server with symlinkMany.
 */
const dir = mkdtempSync(join(tmpdir(), 'bench-hosts-'));
chmodSync(dir, 0o755);
const log = (line: string) => process.stderr.write(line + '\n');
const p50 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const sshd = await startSshd(join(dir, 'sshd'));
const executor = new SshExecutor();
try {
  const server: SshTarget = {
    ...tempServerRoots(dir, 'bench.example.net'),
    sshHost: sshd.host,
    sshPort: sshd.port,
    sshUser: sshd.user,
    sshKeyRef: sshd.privateKeyPath,
    sshHostKey: sshd.hostKeyFingerprint,
  };

  await executor.mustRun(server, ['true']);
  const pooled: number[] = [];
  for (let i = 0; i < 100; i++) {
    const t = performance.now();
    await executor.mustRun(server, ['true']);
    pooled.push(performance.now() - t);
  }
  log(`pooled no-op: p50 ${p50(pooled).toFixed(1)} ms over ${pooled.length} calls`);

  const fresh: number[] = [];
  for (let i = 0; i < 15; i++) {
    const t = performance.now();
    await runSsh(sshd, ['true']);
    fresh.push(performance.now() - t);
  }
  log(`new ssh process per command: p50 ${p50(fresh).toFixed(1)} ms`);

  mkdirSync(join(server.sharedCodeRoot, 'code', 'lib'), { recursive: true });
  await executor.mkdir(server, join(server.homeRoot, 'shop', 'heavymetal'));
  const links = Array.from({ length: 500 }, (_, i) => ({
    target: join(server.sharedCodeRoot, 'code', 'lib', `file${i}.php`),
    path: join(server.homeRoot, 'shop', 'heavymetal', `file${i}.php`),
  }));
  const t = performance.now();
  await executor.symlinkMany(server, links);
  const symlinksS = (performance.now() - t) / 1000;
  const made = readdirSync(join(server.homeRoot, 'shop', 'heavymetal')).length;
  if (made !== 500) throw new Error(`expected 500 symlinks, found ${made}`);
  log(`500 symlinks: ${symlinksS.toFixed(3)} s`);

  process.stdout.write(
    JSON.stringify({
      bench: 'hosts',
      ssh_rtt_p50_ms: Number(p50(pooled).toFixed(2)),
      ssh_new_process_p50_ms: Number(p50(fresh).toFixed(1)),
      symlinks_500_s: Number(symlinksS.toFixed(3)),
    }) + '\n',
  );
} finally {
  executor.onModuleDestroy();
  await stopSshd(sshd);
  rmSync(dir, { recursive: true, force: true });
}
