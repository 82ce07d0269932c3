import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { freePort } from './free-port.js';
import {
  portAnswers,
  run,
  startFailure,
  startServerProcess,
  type ServerProcessOptions,
  stopProcessTree,
  waitUntil,
} from './processes.js';
import type { SshdServer } from './testbed.js';

const HOST = '127.0.0.1';
// sshd re-execs itself for every connection, which needs the absolute path.
const SSHD = '/usr/sbin/sshd';

/**
 * Starts a private sshd in `dir` (created) on a free port of `host` (default
 * 127.0.0.1; any 127.x.y.z address answers on Linux's loopback, so test
 * servers can have addresses of their own), with its own host key and a
 * client key allowed to log in as the current user. Ready once a real `ssh`
 * login with the pinned host key succeeds.
 */
export async function startSshd(dir: string, host: string = HOST, options: ServerProcessOptions = {}): Promise<SshdServer> {
  await mkdir(dir, { recursive: true });
  const log = join(dir, 'sshd.log');
  const hostKey = join(dir, 'host_ed25519');
  const privateKeyPath = join(dir, 'client_ed25519');
  const knownHostsPath = join(dir, 'known_hosts');
  const confPath = join(dir, 'sshd_config');

  const port = await freePort();
  let hostKeyFingerprint: string;
  try {
    const [hostPublicKey, clientPublicKey] = await Promise.all([
      generateEd25519Key(hostKey, 'testbed-host'),
      generateEd25519Key(privateKeyPath, 'testbed-client'),
    ]);
    hostKeyFingerprint = await fingerprint(`${hostKey}.pub`);
    await writeFile(join(dir, 'authorized_keys'), `${clientPublicKey}\n`, { mode: 0o600 });
    await writeFile(knownHostsPath, knownHostsLine(port, hostPublicKey, host), { mode: 0o600 });
    await writeFile(
      confPath,
      [
        `ListenAddress ${host}:${port}`,
        `HostKey ${hostKey}`,
        `PidFile ${join(dir, 'sshd.pid')}`,
        `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
        'PermitRootLogin prohibit-password',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'UsePAM no',
        // The keys live in the checkout, whose modes sshd would otherwise reject.
        'StrictModes no',
        'Subsystem sftp /usr/lib/openssh/sftp-server',
        // A test server is not the developer's shell: bash sources ~/.bashrc for sshd's
        // commands only at shell level 1, and this machine's root runs pyenv there
        // (about 150 ms per session, and a lock that killed sessions leave behind).
        'SetEnv SHLVL=1',
        '',
      ].join('\n'),
    );
    // Privilege separation directory; it lives on a tmpfs and may be gone.
    await mkdir('/run/sshd', { recursive: true });
    await run(SSHD, ['-t', '-f', confPath], { timeoutMs: 10_000 });
  } catch (error) {
    throw startFailure('sshd', error, log);
  }

  const server = await startServerProcess(SSHD, ['-D', '-e', '-f', confPath], log, options);
  const sshd: SshdServer = {
    host,
    port,
    user: userInfo().username,
    privateKeyPath,
    knownHostsPath,
    hostKeyFingerprint,
    pid: server.pid,
  };
  try {
    await waitUntil('a TCP connection', () => portAnswers(port, host), { timeoutMs: 15_000, server });
    await waitUntil('an ssh login', () => runSsh(sshd, ['true']), { timeoutMs: 15_000, intervalMs: 200, server });
    return sshd;
  } catch (error) {
    await stopProcessTree(server.pid, confPath);
    throw startFailure('sshd', error, log);
  }
}

/** Stops the sshd started by startSshd and any session it still serves. */
export async function stopSshd(sshd: SshdServer): Promise<void> {
  // The command line names the config file, which lives next to the key.
  await stopProcessTree(sshd.pid, join(dirname(sshd.privateKeyPath), 'sshd_config'));
  await clearStalePyenvLock();
}

/**
 * A login shell whose rc file runs `pyenv init` (this machine's root does)
 * takes a lock file while it rehashes; a session killed at that moment (as
 * stopping sshd kills its sessions) leaves the lock behind, and every later
 * SSH login then waits 60 s for it. Once no rehash runs, it is stale.
 */
async function clearStalePyenvLock(): Promise<void> {
  const lock = join(process.env.PYENV_ROOT ?? join(homedir(), '.pyenv'), 'shims', '.pyenv-shim');
  if (!existsSync(lock)) return;
  const rehashing = await run('pgrep', ['-f', 'pyenv-rehash'], { timeoutMs: 5_000 }).then(
    () => true,
    () => false,
  );
  if (!rehashing) await rm(lock, { force: true });
}

/**
 * `ssh` options that log in to the testbed sshd with its client key and the
 * pinned host key (no user or system ssh config applies). Append
 * `${user}@${host}` and the remote command.
 */
export function sshOptions(sshd: SshdServer, knownHostsPath = sshd.knownHostsPath): string[] {
  return [
    '-F',
    '/dev/null',
    '-p',
    String(sshd.port),
    '-i',
    sshd.privateKeyPath,
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'BatchMode=yes',
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    `UserKnownHostsFile=${knownHostsPath}`,
    '-o',
    'GlobalKnownHostsFile=/dev/null',
    '-o',
    'ConnectTimeout=5',
  ];
}

/** Generates an ed25519 key pair without passphrase; returns the public key line. */
export async function generateEd25519Key(path: string, comment: string): Promise<string> {
  // ssh-keygen asks before overwriting, which BatchMode cannot answer.
  await rm(path, { force: true });
  await rm(`${path}.pub`, { force: true });
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', path], {
    timeoutMs: 10_000,
  });
  return (await readFile(`${path}.pub`, 'utf8')).trim();
}

/** A known_hosts line pinning `publicKey` for the testbed sshd's address and port. */
export function knownHostsLine(port: number, publicKey: string, host: string = HOST): string {
  // Drop the key comment: only "type base64" belongs after the host pattern.
  const [type, key] = publicKey.split(' ');
  return `[${host}]:${port} ${type} ${key}\n`;
}

async function fingerprint(publicKeyPath: string): Promise<string> {
  // "256 SHA256:... comment (ED25519)"
  const output = await run('ssh-keygen', ['-l', '-E', 'sha256', '-f', publicKeyPath], { timeoutMs: 10_000 });
  const match = /SHA256:\S+/.exec(output);
  if (!match) throw new Error(`no SHA256 fingerprint in ssh-keygen output: ${output}`);
  return match[0];
}

/** Runs a command on the testbed sshd with `ssh` and returns its stdout. */
export async function runSsh(
  sshd: SshdServer,
  command: readonly string[],
  options: { knownHostsPath?: string; timeoutMs?: number } = {},
): Promise<string> {
  return run('ssh', [...sshOptions(sshd, options.knownHostsPath), `${sshd.user}@${sshd.host}`, ...command], {
    timeoutMs: options.timeoutMs ?? 15_000,
  });
}
