import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { DataSource } from 'typeorm';
import { Install, InstallServer, InstallSite, InstallSiteIp, Server, ServerIp, SharedCodeGroup, SiteName } from '@app/catalog';
import { SAMPLE_MANIFEST } from '@app/codebases';

/**
 * Installs written straight into the catalog as the web pipeline reads
 * them (live, one site each on a given IP of the dispatcher), with a home
 * holding a static file and a PHP page: for tests and benchmarks of the
 * nginx pipeline, without running ten thousand builds.
 */
export interface WebInstallSpec {
  fsName: string;
  hostname: string;
  ip: string;
  secureHostname?: string | null;
  cert?: { pem: string; key: string } | null;
}

export async function codeGroupFor(ds: DataSource, server: Server, name = 'web'): Promise<SharedCodeGroup> {
  return ds.getRepository(SharedCodeGroup).save({
    name, tier: 'paid', repoUrl: '/nonexistent', revision: null, path: join(server.sharedCodeRoot, name), masterServerId: server.id,
    installLimit: 1_000_000, installCount: 0, pinned: false, manifest: JSON.parse(JSON.stringify(SAMPLE_MANIFEST)), state: 'ready',
  } as unknown as SharedCodeGroup);
}

/** Inserts the installs in chunks (a handful of statements per chunk), and their homes unless `homes: false`. */
export async function seedWebInstalls(ds: DataSource, server: Server, group: SharedCodeGroup, specs: WebInstallSpec[], options: { homes?: boolean } = {}): Promise<Install[]> {
  const installs: Install[] = [];
  const ips = new Map((await ds.getRepository(ServerIp).find({ where: { serverId: server.id } })).map((i) => [i.ip, i]));
  for (let start = 0; start < specs.length; start += 500) {
    const chunk = specs.slice(start, start + 500);
    await ds.transaction(async (m) => {
      const fresh = chunk.filter((s) => !ips.has(s.ip)).map((s) => s.ip);
      for (const ip of [...new Set(fresh)]) ips.set(ip, await m.save(ServerIp, { serverId: server.id, ip, kind: 'shared', failoverGroup: null, activeServerId: null } as unknown as ServerIp));
      const rows = chunk.map((s) => ({
        orderRef: `WEB-${s.fsName}`, customerEmail: `${s.fsName}@example.com`, license: 'paid', fsName: s.fsName, dbName: `db_${s.fsName}`, dbUser: `u_${s.fsName}`.slice(0, 32),
        dbPasswordEnc: 'unused', dbServerId: null, sharedCodeGroupId: group.id, masterServerId: server.id, status: 'live', statusReason: null,
      }));
      await m.insert(Install, rows as never);
      const saved = await m.getRepository(Install).createQueryBuilder('i').where('i.fsName IN (:...names)', { names: chunk.map((s) => s.fsName) }).getMany();
      const byName = new Map(saved.map((i) => [i.fsName, i]));
      await m.insert(InstallServer, chunk.map((s) => ({ installId: byName.get(s.fsName)!.id, serverId: server.id, role: 'master', weight: 1 })) as never);
      await m.insert(InstallSite, chunk.map((s) => ({
        installId: byName.get(s.fsName)!.id, hostname: s.hostname, secureHostname: s.secureHostname ?? null, sslPemPath: s.cert?.pem ?? null, sslKeyPath: s.cert?.key ?? null,
      })) as never);
      const sites = await m.getRepository(InstallSite).createQueryBuilder('s').where('s.installId IN (:...ids)', { ids: saved.map((i) => i.id) }).getMany();
      const siteOf = new Map(sites.map((s) => [s.installId, s]));
      await m.insert(SiteName, sites.flatMap((s) => [...new Set([s.hostname, ...(s.secureHostname ? [s.secureHostname] : [])])].map((name) => ({ installId: s.installId, installSiteId: s.id, name }))) as never);
      await m.insert(InstallSiteIp, chunk.map((s) => ({ installSiteId: siteOf.get(byName.get(s.fsName)!.id)!.id, serverIpId: ips.get(s.ip)!.id, serverId: server.id, exclusiveIpId: null })) as never);
      installs.push(...chunk.map((s) => byName.get(s.fsName)!));
    });
  }
  if (options.homes !== false) for (const install of installs) writeHome(server, install.fsName);
  return installs;
}

/** `<home>/html/hello.txt` (its fs name) and `index.php` (echoes the host), readable by the web user. */
export function writeHome(server: Server, fsName: string): void {
  const html = join(server.homeRoot, fsName, 'html');
  mkdirSync(html, { recursive: true, mode: 0o755 });
  writeFileSync(join(html, 'hello.txt'), `hello from ${fsName}\n`, { mode: 0o644 });
  // `?env` prints what PHP was given (the FastCGI parameters a shop relies on).
  const env = ['REMOTE_ADDR', 'SERVER_NAME', 'SERVER_PORT', 'SCRIPT_NAME', 'SCRIPT_FILENAME', 'DOCUMENT_ROOT', 'REQUEST_SCHEME', 'HTTPS', 'SERVER_PROTOCOL', 'GATEWAY_INTERFACE']
    .map((k) => `'${k}'`)
    .join(', ');
  writeFileSync(
    join(html, 'index.php'),
    `<?php if (isset($_GET['env'])) { foreach ([${env}] as $k) echo $k, '=', $_SERVER[$k] ?? '', "\\n"; exit; }\necho "php:", $_SERVER['HTTP_HOST'], ":", $_SERVER['REQUEST_URI'];\n`,
    { mode: 0o644 },
  );
}

/** A self-signed certificate and key for `hostname` at `<dir>/<name>.pem|.key`. */
export function makeCert(dir: string, name: string, hostname: string): { pem: string; key: string } {
  mkdirSync(dir, { recursive: true });
  const pem = join(dir, `${name}.pem`);
  const key = join(dir, `${name}.key`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${hostname}`, '-keyout', key, '-out', pem], { stdio: 'ignore' });
  return { pem, key };
}

export interface HttpAnswer {
  status: number;
  body: string;
  location?: string;
  headers?: import('node:http').IncomingHttpHeaders;
}

/** One request on a new connection to `ip:port` with a Host header (HTTPS with SNI when `tls`); a refused connection rejects. */
export function fetchSite(ip: string, hostname: string, path = '/', options: { tls?: boolean; timeoutMs?: number; port?: number; headers?: Record<string, string> } = {}): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    // A new connection each time (no keep-alive agent): a reused idle connection that a reload closes is the client's race, not an outage.
    const common = { host: ip, port: options.port ?? (options.tls ? 443 : 80), path, headers: { Host: hostname, ...options.headers }, timeout: options.timeoutMs ?? 5_000, agent: false as const };
    const req = options.tls
      ? httpsRequest({ ...common, servername: hostname, rejectUnauthorized: false }, answer)
      : request(common, answer);
    function answer(res: import('node:http').IncomingMessage) {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, location: res.headers.location, headers: res.headers }));
    }
    req.once('timeout', () => req.destroy(new Error('timed out')));
    req.once('error', reject);
    req.end();
  });
}
