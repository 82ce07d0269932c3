import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { portAnswers, startServerProcess, stopProcessTree, waitUntil, type ServerProcess, type ServerProcessOptions } from './processes.js';

export interface PhpFpm {
  readonly process: ServerProcess;
  readonly conf: string;
}

/** The php-fpm binary of this machine (Debian ships php-fpm8.2), or null. */
export function phpFpmBinary(): string | null {
  const found = readdirSync('/usr/sbin').filter((f) => /^php-fpm\d+(\.\d+)?$/.test(f)).sort();
  return found.length > 0 ? join('/usr/sbin', found[found.length - 1]!) : existsSync('/usr/sbin/php-fpm') ? '/usr/sbin/php-fpm' : null;
}

/** A private php-fpm pool listening on `host:port`, workers as www-data (as the testbed's nginx workers). */
/**
 * What a handler whose PHP the engine does not manage must set for a
 * rollout's switch to take effect at the next request (README,
 * "Rollouts"); the engine's own pools set it themselves.
 */
const ROLLOUT_SETTINGS = 'php_admin_value[opcache.revalidate_path] = 1\nphp_admin_value[realpath_cache_size] = 0\n';

export async function startPhpFpm(dir: string, host: string, port: number, options: ServerProcessOptions = {}): Promise<PhpFpm> {
  const binary = phpFpmBinary();
  if (!binary) throw new Error('php-fpm is not installed (scripts/ensure-system-packages.sh installs it)');
  mkdirSync(dir, { recursive: true });
  const conf = join(dir, 'php-fpm.conf');
  const user = process.getuid?.() === 0 ? 'user = www-data\ngroup = www-data\n' : '';
  writeFileSync(conf, `[global]\npid = ${dir}/php-fpm.pid\nerror_log = ${dir}/php-fpm.log\ndaemonize = no\n[shops]\n${user}listen = ${host}:${port}\npm = ondemand\npm.max_children = 4\n${ROLLOUT_SETTINGS}`);
  const server = await startServerProcess(binary, ['-F', '-y', conf], join(dir, 'php-fpm.out'), options);
  await waitUntil('php-fpm to listen', () => portAnswers(port, host), { timeoutMs: 15_000, server });
  return { process: server, conf };
}

export async function stopPhpFpm(fpm: PhpFpm): Promise<void> {
  await stopProcessTree(fpm.process.pid, fpm.conf);
}
