import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkSetting, parsePhpInfoDirectives } from '@app/codebases';
import { fastcgi } from '../support/fastcgi.js';
import { freePort } from '../support/free-port.js';
import { phpFpmBinary } from '../support/php-fpm.js';
import { portAnswers, startServerProcess, stopProcessTree, waitUntil, type ServerProcess } from '../support/processes.js';

const HOST = '127.0.102.3';
/** What php.ini says for every pool (php-fpm's -d): the master's values. */
const MASTER = ['-d', 'disable_functions=shell_exec', '-d', 'opcache.memory_consumption=128', '-d', 'expose_php=Off'];

/**
 * The ground truth behind php-requirements.ts's verdicts, measured on this
 * machine's php-fpm: a pool's php_admin_value does set PHP_INI_SYSTEM
 * directives, but cannot enable a function php.ini disables, nor change
 * OPcache's shared memory (its value shows in ini_get and does nothing).
 */
describe('what a php-fpm pool can set (real php-fpm, private pools)', () => {
  const fpm = phpFpmBinary()!;
  const dir = mkdtempSync(join(tmpdir(), 'fpm-pool-settings-'));
  const script = join(dir, 't.php');
  let server: ServerProcess;
  const ports: Record<string, number> = {};
  const ask = async (pool: string) => {
    const { head, body } = await fastcgi({ host: HOST, port: ports[pool]! }, script);
    return { head, state: JSON.parse(body) as Record<string, unknown> };
  };

  beforeAll(async () => {
    chmodSync(dir, 0o755);
    writeFileSync(
      script,
      `<?php $s = opcache_get_status(false);
echo json_encode(['free' => $s ? $s['memory_usage']['free_memory'] : null, 'memory_consumption' => ini_get('opcache.memory_consumption'),
  'exec' => function_exists('exec'), 'shell_exec' => function_exists('shell_exec'), 'disable_functions' => ini_get('disable_functions'),
  'realpath_cache_size' => ini_get('realpath_cache_size'), 'memory_limit' => ini_get('memory_limit')]);`,
    );
    chmodSync(script, 0o644);
    ports.a = await freePort();
    ports.b = await freePort();
    const user = process.getuid?.() === 0 ? 'user = www-data\ngroup = www-data\n' : '';
    const pool = (name: string, values: Record<string, string>) =>
      `[${name}]\n${user}listen = ${HOST}:${ports[name]}\npm = ondemand\npm.max_children = 2\n${Object.entries(values).map(([k, v]) => `php_admin_value[${k}] = ${v}\n`).join('')}`;
    const conf = join(dir, 'php-fpm.conf');
    writeFileSync(
      conf,
      `[global]\npid = ${dir}/php-fpm.pid\nerror_log = ${dir}/php-fpm.log\ndaemonize = no\n` +
        pool('a', { disable_functions: 'exec', 'opcache.memory_consumption': '256', expose_php: 'On', realpath_cache_size: '1M', memory_limit: '300M' }) +
        pool('b', { disable_functions: '' }),
    );
    server = await startServerProcess(fpm, ['-F', '-y', conf, ...MASTER], join(dir, 'php-fpm.out'));
    await waitUntil('php-fpm to listen', async () => (await portAnswers(ports.a!, HOST)) && portAnswers(ports.b!, HOST), { timeoutMs: 15_000, server });
  });
  afterAll(async () => {
    if (server) await stopProcessTree(server.pid, dir);
    rmSync(dir, { recursive: true, force: true });
  });

  it('matches the verdicts of checkSetting against the master\'s values', async () => {
    const ini = parsePhpInfoDirectives(execFileSync(fpm, [...MASTER, '-i'], { encoding: 'utf8' }));
    const a = await ask('a');
    const b = await ask('b');

    // A pool disables more functions...
    expect(checkSetting('disable_functions', 'exec,shell_exec', ini).status).toBe('pool');
    expect(a.state).toMatchObject({ exec: false, shell_exec: false });
    // ...but never enables one php.ini disabled, whatever ini_get then says.
    expect(checkSetting('disable_functions', '', ini).status).toBe('unsatisfiable');
    // (What ini_get('disable_functions') shows in pool b varies between runs of the
    // same php-fpm: '' here, 'exec', pool a's value, on CI. Only the functions count.)
    expect(b.state).toMatchObject({ exec: true, shell_exec: false });

    // OPcache's memory is the master's: the pool's 256 shows, and is not there.
    expect(checkSetting('opcache.memory_consumption', '256', ini).status).toBe('unsatisfiable');
    expect(checkSetting('opcache.memory_consumption', '64', ini).status).toBe('same');
    expect(a.state.memory_consumption).toBe('256');
    expect(a.state.free).toBeLessThanOrEqual(128 * 1024 * 1024);

    // PHP_INI_SYSTEM directives (expose_php, realpath_cache_size) and PHP_INI_ALL ones do change per pool.
    for (const [name, value] of [['expose_php', 'On'], ['realpath_cache_size', '1M'], ['memory_limit', '300M']] as const) {
      expect({ name, status: checkSetting(name, value, ini).status }).toEqual({ name, status: 'pool' });
    }
    expect(a.head).toMatch(/^X-Powered-By: PHP\//m);
    expect(b.head).not.toMatch(/X-Powered-By/);
    expect(a.state).toMatchObject({ realpath_cache_size: '1M', memory_limit: '300M' });
  });
});
