import { mkdir, writeFile } from 'node:fs/promises';
import { registerHooks } from 'node:module';
import { join } from 'node:path';
import type { TestbedState } from './testbed.js';

/**
 * Jest globalSetup of the integration project: starts MariaDB, sshd and nginx
 * in a private directory of this run and publishes their state through
 * TESTBED_STATE, which the test workers inherit.
 */
export default async function globalSetup(): Promise<void> {
  const startedAt = Date.now();
  resolveTsImports();
  const { startMariadb, stopMariadb } = await import('./mariadb.js');
  const { startNginx, stopNginx } = await import('./nginx.js');
  const { startSshd, stopSshd } = await import('./sshd.js');
  const { TESTBED_STATE_ENV } = await import('./testbed.js');

  const stamp = new Date(startedAt).toISOString().replace(/[-:]/g, '').replace(/\..*/, '');
  const dir = join(process.cwd(), '.test-run', `${stamp}-${process.pid}`);
  await mkdir(dir, { recursive: true });

  const [mariadb, sshd, nginx] = await Promise.allSettled([
    startMariadb(join(dir, 'mariadb')),
    startSshd(join(dir, 'sshd')),
    startNginx(join(dir, 'nginx')),
  ]);
  if (mariadb.status === 'rejected' || sshd.status === 'rejected' || nginx.status === 'rejected') {
    // Jest skips globalTeardown when globalSetup throws: stop what did start.
    await Promise.allSettled([
      mariadb.status === 'fulfilled' ? stopMariadb(mariadb.value) : undefined,
      sshd.status === 'fulfilled' ? stopSshd(sshd.value) : undefined,
      nginx.status === 'fulfilled' ? stopNginx(nginx.value) : undefined,
    ]);
    const failures = [mariadb, sshd, nginx]
      .filter((result) => result.status === 'rejected')
      .map((result) => (result.reason instanceof Error ? result.reason.message : String(result.reason)));
    throw new Error(`testbed: ${failures.join('\n\n')}\n\n(logs kept in ${dir})`);
  }

  const state: TestbedState = { dir, mariadb: mariadb.value, sshd: sshd.value, nginx: nginx.value };
  const statePath = join(dir, 'testbed.json');
  await writeFile(statePath, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  process.env[TESTBED_STATE_ENV] = statePath;
  console.log(
    `\ntestbed: mariadb :${state.mariadb.port}, sshd :${state.sshd.port}, nginx :${state.nginx.port} ` +
      `on 127.0.0.1, started in ${Date.now() - startedAt} ms`,
  );
}

/**
 * Jest loads globalSetup and globalTeardown with Node's own loader (Node
 * strips the types), not through ts-jest and moduleNameMapper
 * (jestjs/jest#15037, kulshekhar/ts-jest#4127), so an `./x.js` import of a
 * sibling `x.ts` fails. This hook retries such imports with `.ts`; the
 * support modules are then imported dynamically, once it is in place.
 * Kept in sync with the copy in global-teardown.ts, which cannot import it.
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
