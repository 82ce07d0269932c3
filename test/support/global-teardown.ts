import { rm } from 'node:fs/promises';
import { registerHooks } from 'node:module';
import { dirname } from 'node:path';

/**
 * Jest globalTeardown of the integration project: stops every testbed server
 * by PID, kills whatever else still runs from the run's directory (an ssh
 * client or php-fpm a failed test left behind), then removes the directory
 * unless KEEP_TESTBED=1.
 */
export default async function globalTeardown(): Promise<void> {
  resolveTsImports();
  const { stopMariadb } = await import('./mariadb.js');
  const { stopNginx } = await import('./nginx.js');
  const { killProcessesMentioning } = await import('./processes.js');
  const { stopSshd } = await import('./sshd.js');
  const { readTestbed, TESTBED_STATE_ENV } = await import('./testbed.js');

  // Unset when globalSetup failed; it already stopped what it had started.
  if (!process.env[TESTBED_STATE_ENV]) return;
  const state = readTestbed();

  const results = await Promise.allSettled([
    stopMariadb(state.mariadb),
    stopSshd(state.sshd),
    stopNginx(state.nginx),
  ]);
  // The trailing slash keeps a run whose directory name extends this one safe.
  const stragglers = killProcessesMentioning(`${state.dir}/`);
  delete process.env[TESTBED_STATE_ENV];

  if (process.env.KEEP_TESTBED === '1') {
    console.log(`testbed: kept ${state.dir}`);
  } else {
    await rm(state.dir, { recursive: true, force: true });
    // The MariaDB socket moves to the system temp dir when the checkout's path is too long.
    const socketDir = dirname(state.mariadb.socket);
    if (!socketDir.startsWith(`${state.dir}/`)) await rm(socketDir, { recursive: true, force: true });
  }

  if (stragglers.length > 0) console.warn(`testbed: killed leftover processes ${stragglers.join(', ')}`);
  const failures = results
    .filter((result) => result.status === 'rejected')
    .map((result) => String(result.reason));
  if (failures.length > 0) throw new Error(`testbed teardown: ${failures.join('; ')}`);
}

/**
 * Lets Node's own loader, which Jest uses for this file, resolve `./x.js` to
 * a sibling `x.ts`. Copy of the hook in global-setup.ts (see the reason
 * there); registered once per process.
 */
function resolveTsImports(): void {
  const registered = Symbol.for('testbed.resolve-ts-imports');
  const flags = globalThis as Record<symbol, unknown>;
  if (flags[registered]) return;
  flags[registered] = true;
  registerHooks({
    resolve(specifier, context, nextResolve) {
      const tsSibling = /^\.\.?\/.*\.js$/.test(specifier) && context.parentURL?.endsWith('.ts');
      try {
        return nextResolve(specifier, context);
      } catch (error) {
        if (!tsSibling) throw error;
        return nextResolve(`${specifier.slice(0, -3)}.ts`, context);
      }
    },
  });
}
