import { mkdir, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { freePort } from './free-port.js';
import {
  descendantsOf,
  isAlive,
  run,
  startFailure,
  startServerProcess,
  type ServerProcessOptions,
  stopProcessTree,
  waitUntil,
} from './processes.js';
import { readTestbed, type NginxServer } from './testbed.js';

const HOST = '127.0.0.1';
const TEMP_PATHS = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'] as const;

/**
 * Starts a private nginx with its prefix in `dir` (created), listening on
 * 127.0.0.1 on a free port. Its default server answers 404; vhosts go in
 * `confDir` as `*.conf` (then call reloadNginx); `include` adds include
 * lines to its http block (a dispatcher's `<nginx conf dir>/current/*.conf`).
 */
export async function startNginx(dir: string, options: { include?: string[] } & ServerProcessOptions = {}): Promise<NginxServer> {
  const confDir = join(dir, 'conf.d');
  const confPath = join(dir, 'nginx.conf');
  const errorLog = join(dir, 'logs', 'error.log');
  const outputLog = join(dir, 'logs', 'nginx.log');
  await mkdir(confDir, { recursive: true });
  await mkdir(join(dir, 'logs'), { recursive: true });
  for (const temp of TEMP_PATHS) await mkdir(join(dir, 'temp', temp), { recursive: true });

  const port = await freePort();
  const nginx: NginxServer = { prefix: dir, confPath, confDir, port, pid: 0 };
  await writeFile(confPath, renderNginxConf(nginx, options.include ?? []));

  try {
    await testNginxConfig(nginx);
  } catch (error) {
    throw startFailure('nginx', error, errorLog);
  }
  const server = await startServerProcess(
    'nginx',
    [...nginxArgs(nginx), '-g', 'daemon off;'],
    outputLog,
    { mountNamespace: options.mountNamespace },
  );
  nginx.pid = server.pid;
  try {
    await waitUntil('an HTTP response', () => httpStatus(port), { timeoutMs: 15_000, server });
    return nginx;
  } catch (error) {
    await stopProcessTree(server.pid, confPath);
    throw startFailure('nginx', error, errorLog, outputLog);
  }
}

/** Stops the nginx started by startNginx, master and workers. */
export async function stopNginx(nginx: NginxServer): Promise<void> {
  await stopProcessTree(nginx.pid, nginx.confPath);
}

/** `nginx -t` on the testbed nginx's configuration, vhosts in confDir included. */
export async function testNginxConfig(nginx: NginxServer = readTestbed().nginx): Promise<void> {
  await run('nginx', [...nginxArgs(nginx), '-t', '-q'], { timeoutMs: 30_000 });
}

/**
 * Tests the configuration, then `nginx -s reload`, and returns once every
 * worker that ran the old configuration has exited: from then on, requests
 * see the new vhosts (right after the signal, an old worker may still answer).
 */
export async function reloadNginx(nginx: NginxServer = readTestbed().nginx): Promise<void> {
  await testNginxConfig(nginx);
  const oldWorkers = descendantsOf(nginx.pid);
  await run('nginx', [...nginxArgs(nginx), '-s', 'reload'], { timeoutMs: 10_000 });
  await waitUntil(
    'the exit of the old workers',
    async () => !oldWorkers.some(isAlive) && descendantsOf(nginx.pid).length > 0,
    { timeoutMs: 15_000, intervalMs: 20 },
  );
}

// -p and -e on every call: Debian's built-in prefix and error log are in /var,
// and nginx opens the error log before it has read the configuration.
function nginxArgs(nginx: NginxServer): string[] {
  return ['-c', nginx.confPath, '-p', `${nginx.prefix}/`, '-e', join(nginx.prefix, 'logs', 'error.log')];
}

function renderNginxConf(nginx: NginxServer, includes: string[]): string {
  const p = nginx.prefix;
  // Workers of a root master default to "nobody"; www-data matches Debian's
  // packaged config and php-fpm's pool user, so document roots behave alike.
  const user = process.getuid?.() === 0 ? 'user www-data;' : '';
  return `# Written by test/support/nginx.ts for one test run.
${user}
worker_processes 1;
pid ${p}/nginx.pid;
lock_file ${p}/nginx.lock;
error_log ${p}/logs/error.log;

events {
  worker_connections 512;
}

http {
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  access_log ${p}/logs/access.log;
${TEMP_PATHS.map((temp) => `  ${temp}_temp_path ${p}/temp/${temp};`).join('\n')}
  # Tests may write thousands of vhosts.
  server_names_hash_max_size 65536;
  server_names_hash_bucket_size 128;
  map_hash_max_size 65536;
  map_hash_bucket_size 128;

  server {
    listen ${HOST}:${nginx.port} default_server;
    server_name _;
    return 404;
  }

  include ${nginx.confDir}/*.conf;
${includes.map((i) => `  include ${i};`).join('\n')}
}
`;
}

function httpStatus(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: HOST, port, path: '/', timeout: 2_000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.once('timeout', () => req.destroy(new Error('timed out')));
    req.once('error', reject);
    req.end();
  });
}

/**
 * An install's vhost in a generation directory (`<nginxConfDir>/current`):
 * its own file (`shops/<fs>.conf`, `shared: false`), or its hosts file
 * followed by the shared server blocks it names (`shared: true`); null when
 * the generation has neither. `names`: the hostnames it serves there;
 * `upstream`: the upstream it passes PHP to.
 */
export function vhostOf(dir: string, fsName: string): { shared: boolean; text: string; names: string[]; upstream: string } | null {
  const own = join(dir, 'shops', `${fsName}.conf`);
  if (existsSync(own)) {
    const text = readFileSync(own, 'utf8');
    return { shared: false, text, names: [...text.matchAll(/server_name ([^;]*);/g)].flatMap((m) => m[1]!.split(' ')), upstream: /fastcgi_pass (php_[0-9a-f]{16});/.exec(text)?.[1] ?? '' };
  }
  const hosts = join(dir, 'hosts', `${fsName}.conf`);
  if (!existsSync(hosts)) return null;
  const entries = readFileSync(hosts, 'utf8');
  const groups = [...new Set([...entries.matchAll(/# (groups\/g_[0-9a-f]{16}\.conf)$/gm)].map((m) => m[1]!))];
  return {
    shared: true,
    text: [entries, ...groups.map((g) => readFileSync(join(dir, g), 'utf8'))].join('\n'),
    names: [...entries.matchAll(/^([a-z0-9.-]+) /gm)].map((m) => m[1]!),
    upstream: /^[a-z0-9.-]+ (php_[0-9a-f]{16}):/m.exec(entries)?.[1] ?? '',
  };
}
