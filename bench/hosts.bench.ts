import 'reflect-metadata';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { SshExecutor, type SshTarget } from '@app/hosts';
import { tempServerRoots } from '../test/support/server-roots.js';
import { run } from '../test/support/processes.js';
import { runSsh, sshOptions, startSshd, stopSshd } from '../test/support/sshd.js';

/**
 * npm run bench -- hosts
 *
 * Against a private sshd on loopback: round trip of a no-op command over the
 * pooled connection, the same with a new `ssh` process per command, and
 * building 500 symlinks on the server with symlinkMany.
 *
 * Baseline in the same run (issue 20): `openssh_mux_rtt_p50_ms`, the round
 * trip of `ssh -S <control socket> -p <port> <user>@<host> true` over an
 * OpenSSH ControlMaster connection to the same sshd (same key, pinned host
 * key), in blocks of 10 alternating with the pooled calls' blocks (100
 * each); `rtt_ratio` = ssh_rtt_p50_ms / openssh_mux_rtt_p50_ms.
 */
const dir = mkdtempSync(join(tmpdir(), 'bench-hosts-'));
chmodSync(dir, 0o755);
const log = (line: string) => process.stderr.write(line + '\n');
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const p50 = (xs: number[]) => pct(xs, 50);
// Under the directory's own name: a control socket path must stay short (sun_path).
const muxSocket = join(dir, 'mux.sock');

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

  // The OpenSSH baseline: a ControlMaster (-M) on its own socket, backgrounded after login (-f).
  const loadAtStart = Number(loadavg()[0]!.toFixed(2));
  const target = `${sshd.user}@${sshd.host}`;
  await new Promise<void>((resolve, reject) => {
    const master = spawn('ssh', [...sshOptions(sshd), '-M', '-S', muxSocket, '-N', '-f', '-E', join(dir, 'mux-master.log'), target], { stdio: 'ignore' });
    master.once('error', reject);
    master.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`ssh -M exited with ${code}: ${existsSync(join(dir, 'mux-master.log')) ? readFileSync(join(dir, 'mux-master.log'), 'utf8') : ''}`)),
    );
  });
  const mux = () => run('ssh', ['-F', '/dev/null', '-o', 'BatchMode=yes', '-S', muxSocket, '-p', String(sshd.port), target, 'true'], { timeoutMs: 15_000 });

  await executor.mustRun(server, ['true']);
  await mux();
  const pooled: number[] = [];
  const muxed: number[] = [];
  for (let block = 0; block < 20; block++) {
    // Blocks of 10, alternating which of the two goes first in each pair of blocks.
    const pooledFirst = Math.floor(block / 2) % 2 === 0;
    if ((block % 2 === 0) === pooledFirst) {
      for (let i = 0; i < 10; i++) {
        const t = performance.now();
        await executor.mustRun(server, ['true']);
        pooled.push(performance.now() - t);
      }
    } else {
      for (let i = 0; i < 10; i++) {
        const t = performance.now();
        await mux();
        muxed.push(performance.now() - t);
      }
    }
  }
  const loadAfterRtt = Number(loadavg()[0]!.toFixed(2));
  log(`pooled no-op: p50 ${p50(pooled).toFixed(1)} ms over ${pooled.length} calls (p10 ${pct(pooled, 10).toFixed(1)}, p90 ${pct(pooled, 90).toFixed(1)})`);
  log(`openssh mux no-op: p50 ${p50(muxed).toFixed(1)} ms over ${muxed.length} calls (p10 ${pct(muxed, 10).toFixed(1)}, p90 ${pct(muxed, 90).toFixed(1)}) [load ${loadAtStart} → ${loadAfterRtt}]`);
  await run('ssh', ['-F', '/dev/null', '-S', muxSocket, '-O', 'exit', target], { timeoutMs: 15_000 });

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
      load_1m: [loadAtStart, loadAfterRtt],
      ssh_rtt_p50_ms: Number(p50(pooled).toFixed(2)),
      ssh_rtt_p10_p90_ms: [Number(pct(pooled, 10).toFixed(2)), Number(pct(pooled, 90).toFixed(2))],
      openssh_mux_rtt_p50_ms: Number(p50(muxed).toFixed(2)),
      openssh_mux_rtt_p10_p90_ms: [Number(pct(muxed, 10).toFixed(2)), Number(pct(muxed, 90).toFixed(2))],
      rtt_ratio: Number((p50(pooled) / p50(muxed)).toFixed(3)),
      ssh_new_process_p50_ms: Number(p50(fresh).toFixed(1)),
      symlinks_500_s: Number(symlinksS.toFixed(3)),
    }) + '\n',
  );
} finally {
  // The master, if still there (a failure above): -O exit; stopping sshd would end it too.
  if (existsSync(muxSocket)) await run('ssh', ['-F', '/dev/null', '-S', muxSocket, '-O', 'exit', `${sshd.user}@${sshd.host}`], { timeoutMs: 15_000 }).catch(() => undefined);
  executor.onModuleDestroy();
  await stopSshd(sshd);
  rmSync(dir, { recursive: true, force: true });
}
