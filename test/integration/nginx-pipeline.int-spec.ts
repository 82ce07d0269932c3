import { execFileSync, spawn } from 'node:child_process';
import { jest } from '@jest/globals';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { INestApplicationContext, Type } from '@nestjs/common';
import { DataSource, In } from 'typeorm';
import { AuditEvent, DispatcherConfig, Install, InstallServer, InstallSite, Job, Server, SharedCodeGroup, WebQuarantine } from '@app/catalog';
import { CodebasesModule } from '@app/codebases';
import { HostsModule } from '@app/hosts';
import { InstallsModule, InstallsService, RemovalModule } from '@app/installs';
import { SagaModule } from '@app/saga';
import { DispatcherFiles, NGINX_REBUILD, NginxNotRunningError, NginxPipeline, NginxRebuilds, WebserverModule } from '@app/webserver';
import { createTestCatalog, TEST_SECRETS_KEY, type TestCatalog } from '../support/catalog.js';
import { cleanEnv, runCli } from '../support/processes-engine.js';
import { startNginx, stopNginx, testNginxConfig } from '../support/nginx.js';
import { startPhpFpm, stopPhpFpm, type PhpFpm } from '../support/php-fpm.js';
import { descendantsOf, isAlive } from '../support/processes.js';
import { eventually, sleep, startQueueContext } from '../support/queue-context.js';
import { testServer } from '../support/server-roots.js';
import type { NginxServer } from '../support/testbed.js';
import { readTestbed } from '../support/testbed.js';
import { codeGroupFor, fetchSite, makeCert, seedWebInstalls } from '../support/web-installs.js';

/**
 * The nginx pipeline against a real nginx (its http block includes the
 * dispatcher's `current/*.conf`) and php-fpm, on a dispatcher reached over
 * SSH, catalog on MariaDB. Sites are asked over HTTP with a Host header on
 * their own loopback IPs, port 80.
 */
describe('nginx pipeline on a running nginx', () => {
  let base: string;
  let catalog: TestCatalog;
  let app: INestApplicationContext;
  let ds: DataSource;
  let nginx: NginxServer;
  let fpm: PhpFpm;
  let d1: Server;
  let group: SharedCodeGroup;
  let pipeline: NginxPipeline;
  const ip = (n: number) => `127.0.95.${n}`;

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'nginx-pipeline-'));
    chmodSync(base, 0o755);
    catalog = await createTestCatalog('mariadb', 'nginx_pipeline');
    app = await startQueueContext(catalog.url, [], { concurrency: 2, pollMs: 20, reapEveryMs: 500 }, [HostsModule.forRoot({ http: false }), CodebasesModule.forRoot({ http: false }), WebserverModule, InstallsModule.forRoot({ http: false }), RemovalModule.forRoot({ http: false, jobs: true }), SagaModule] as unknown as Type[]);
    ds = app.get(DataSource);
    const serverRow = testServer(join(base, 'd1'), 'web1.example.net', ['dispatcher', 'handler'], readTestbed().sshd, { privateIp: '127.0.95.200' });
    nginx = await startNginx(join(base, 'nginx'), { include: [join(serverRow.nginxConfDir, 'current/*.conf')] });
    d1 = await ds.getRepository(Server).save({ ...serverRow, nginxPidFile: join(nginx.prefix, 'nginx.pid') });
    fpm = await startPhpFpm(join(base, 'fpm'), '127.0.95.200', 9000);
    group = await codeGroupFor(ds, d1);
    pipeline = app.get(NginxPipeline);
  });
  afterAll(async () => {
    await app?.close();
    if (nginx) await stopNginx(nginx);
    if (fpm) await stopPhpFpm(fpm);
    await catalog?.drop();
    rmSync(base, { recursive: true, force: true });
  });

  const generations = () => readdirSync(join(d1.nginxConfDir, 'generations')).sort();
  const current = () => readlinkSync(join(d1.nginxConfDir, 'current'));
  const site = async (fsName: string) => {
    const install = await ds.getRepository(Install).findOneByOrFail({ fsName });
    return ds.getRepository(InstallSite).findOneByOrFail({ installId: install.id });
  };

  it('applies the catalog: every site answers through the running nginx, static files and PHP', async () => {
    await seedWebInstalls(ds, d1, group, [
      { fsName: 'alpha', hostname: 'alpha.example.org', ip: ip(1) },
      { fsName: 'beta', hostname: 'beta.example.org', ip: ip(2) },
      { fsName: 'gamma', hostname: 'gamma.example.org', ip: ip(1) },
    ]);
    const report = await pipeline.apply(d1);
    // One file per install (its hostnames' document root: none has rewrites or a certificate), one upstream for the PHP backends they
    // share, and one server block per address they share.
    const block = expect.stringMatching(/^groups\/g_[0-9a-f]{16}\.conf$/);
    expect(report).toMatchObject({ nginx: 'reloaded', filesWritten: 7, written: ['hosts/alpha.conf', 'hosts/beta.conf', 'hosts/gamma.conf', expect.stringMatching(/^upstreams\/php_[0-9a-f]{16}\.conf$/), block, block, 'defaults.conf'], quarantined: [] });
    const blocks = readdirSync(join(d1.nginxConfDir, 'current/groups')).map((f) => readFileSync(join(d1.nginxConfDir, 'current/groups', f), 'utf8'));
    expect(blocks.map((b) => /server_name (.*);/.exec(b)![1]).sort()).toEqual(['alpha.example.org gamma.example.org', 'beta.example.org']);
    expect(readdirSync(join(d1.nginxConfDir, 'current/shops'))).toEqual([]);
    expect(current()).toBe(`generations/${report.generation}`);

    expect(await fetchSite(ip(1), 'alpha.example.org', '/hello.txt')).toMatchObject({ status: 200, body: 'hello from alpha\n' });
    expect(await fetchSite(ip(1), 'gamma.example.org', '/hello.txt')).toMatchObject({ status: 200, body: 'hello from gamma\n' });
    expect(await fetchSite(ip(2), 'beta.example.org', '/index.php')).toMatchObject({ status: 200, body: 'php:beta.example.org:/index.php' });
    // Not a file: the front controller (PHP) answers; PHP files other than the entry points are refused.
    expect(await fetchSite(ip(2), 'beta.example.org', '/some/page?x=1')).toMatchObject({ status: 200, body: 'php:beta.example.org:/some/page?x=1' });
    expect((await fetchSite(ip(2), 'beta.example.org', '/other.php')).status).toBe(403);
    // The shops' access log format carries the host first (site accounting).
    expect(readFileSync(join(d1.nginxConfDir, 'current/shops.conf'), 'utf8')).toContain("log_format shop_host '$host ");
    expect((await ds.getRepository(DispatcherConfig).findOneByOrFail({ serverId: d1.id })).liveGeneration).toBe(report.generation);
  });

  it('answers a request for a host no install has with 404, never a shop: unknown, empty, missing or odd Host, on a shared and a dedicated IP', async () => {
    const noShop = (answer: { status: number; body: string }) => ({ status: answer.status, shop: /hello from|php:/.test(answer.body) });
    for (const address of [ip(1), ip(2)]) {
      expect(noShop(await fetchSite(address, 'stranger.example.com', '/hello.txt'))).toEqual({ status: 404, shop: false });
      expect(noShop(await fetchSite(address, 'stranger.example.com', '/index.php'))).toEqual({ status: 404, shop: false });
      expect(noShop(await fetchSite(address, '', '/'))).toEqual({ status: 404, shop: false });
      // HTTP/1.0 without a Host at all.
      const raw = await new Promise<string>((resolve, reject) => {
        const socket = connect({ host: address, port: 80 }, () => socket.end('GET /hello.txt HTTP/1.0\r\n\r\n'));
        let data = '';
        socket.on('data', (c) => (data += c.toString()));
        socket.on('end', () => resolve(data));
        socket.on('error', reject);
      });
      expect(raw).toMatch(/^HTTP\/1\.1 404 /);
      expect(raw).not.toMatch(/hello from|php:/);
      expect(noShop(await fetchSite(address, '.example.org', '/hello.txt'))).toEqual({ status: 404, shop: false });
    }
    // The shops themselves still answer by their names.
    expect(await fetchSite(ip(2), 'beta.example.org', '/hello.txt')).toMatchObject({ status: 200, body: 'hello from beta\n' });
    expect(readFileSync(join(d1.nginxConfDir, 'current/defaults.conf'), 'utf8')).toContain(`listen ${ip(1)}:80 default_server;`);
  });

  it('gives PHP the full set of FastCGI parameters (the client, the server, the script, the scheme)', async () => {
    const env = (await fetchSite(ip(2), 'beta.example.org', '/index.php?env=1')).body;
    const root = join(d1.homeRoot, 'beta', 'html');
    expect(env).toBe(
      [
        'REMOTE_ADDR=127.0.0.1', 'SERVER_NAME=beta.example.org', 'SERVER_PORT=80', 'SCRIPT_NAME=/index.php', `SCRIPT_FILENAME=${root}/index.php`,
        `DOCUMENT_ROOT=${root}`, 'REQUEST_SCHEME=http', 'HTTPS=', 'SERVER_PROTOCOL=HTTP/1.1', 'GATEWAY_INTERFACE=CGI/1.1', '',
      ].join('\n'),
    );
    // gamma shares alpha's server block (alpha's name first in it): PHP is told gamma's name, script and root, never alpha's.
    const gamma = (await fetchSite(ip(1), 'gamma.example.org', '/index.php?env=1')).body;
    const gammaRoot = join(d1.homeRoot, 'gamma', 'html');
    expect(gamma).toContain(`SERVER_NAME=gamma.example.org\nSERVER_PORT=80\nSCRIPT_NAME=/index.php\nSCRIPT_FILENAME=${gammaRoot}/index.php\nDOCUMENT_ROOT=${gammaRoot}\n`);
    expect(await fetchSite(ip(1), 'alpha.example.org', '/hello.txt')).toMatchObject({ status: 200, body: 'hello from alpha\n' });
    expect(await fetchSite(ip(1), 'gamma.example.org', '/hello.txt')).toMatchObject({ status: 200, body: 'hello from gamma\n' });
  });

  it('writes one file for a one-install change, and reloads nothing when nothing changed', async () => {
    await ds.getRepository(InstallSite).update({ id: (await site('beta')).id }, { secureHostname: 'secure.beta.example.org' });
    const before = current();
    const report = await pipeline.apply(d1);
    // Its file, and the server block it shares (beta's names in it).
    expect(report).toMatchObject({ nginx: 'reloaded', filesWritten: 2, written: ['hosts/beta.conf', expect.stringMatching(/^groups\//)], removed: [] });
    expect(await fetchSite(ip(2), 'secure.beta.example.org', '/hello.txt')).toMatchObject({ status: 200, body: 'hello from beta\n' });
    // The unchanged files are the same inodes as in the previous generation: linked, not written.
    const inode = (gen: string, f: string) => execFileSync('stat', ['-c', '%i', join(d1.nginxConfDir, gen, 'hosts', f)]).toString();
    expect(inode(before, 'alpha.conf')).toBe(inode(current(), 'alpha.conf'));
    // The changed file is a new one: the generation it replaced still has what nginx loaded before (its last-good).
    expect(inode(before, 'beta.conf')).not.toBe(inode(current(), 'beta.conf'));
    expect(readFileSync(join(d1.nginxConfDir, before, 'hosts/beta.conf'), 'utf8')).not.toContain('secure.beta.example.org');
    expect(readFileSync(join(d1.nginxConfDir, current(), 'hosts/beta.conf'), 'utf8')).toContain('secure.beta.example.org');
    expect(readlinkSync(join(d1.nginxConfDir, 'last-good'))).toBe(before);

    const workers = descendantsOf(nginx.pid).sort();
    const again = await pipeline.apply(d1);
    expect(again).toMatchObject({ nginx: 'unchanged', generation: null, filesWritten: 0 });
    // No reload: no worker the master did not already have.
    expect(descendantsOf(nginx.pid).filter((p) => !workers.includes(p))).toEqual([]);

    // The generation's manifest spares hashing the live files, but a file edited by hand (in place) is found and put back.
    const alpha = join(d1.nginxConfDir, 'current/hosts/alpha.conf');
    expect(readFileSync(join(d1.nginxConfDir, 'current/manifest'), 'utf8')).toContain(' hosts/alpha.conf\n');
    writeFileSync(alpha, `${readFileSync(alpha, 'utf8')}# edited by hand\n`);
    const repaired = await pipeline.apply(d1);
    expect(repaired).toMatchObject({ nginx: 'reloaded', written: ['hosts/alpha.conf'] });
    expect(readFileSync(join(d1.nginxConfDir, 'current/hosts/alpha.conf'), 'utf8')).not.toContain('edited by hand');

    // Told what the live generation's manifest holds, inspect sends back only what differs from it, and ends with the same view.
    const files = pipeline.files(d1);
    const full = await files.inspect();
    const known = { generation: full.current!, hashes: new Map(full.hashes) };
    expect((await files.inspect(known)).hashes).toEqual(full.hashes);
    const beta = join(d1.nginxConfDir, 'current/hosts/beta.conf');
    const betaText = readFileSync(beta, 'utf8');
    writeFileSync(beta, `${betaText}# edited by hand\n`);
    rmSync(join(d1.nginxConfDir, 'current/hosts/gamma.conf'));
    const drifted = await files.inspect(known);
    expect(drifted.hashes).toEqual((await files.inspect()).hashes);
    expect(drifted.hashes.has('hosts/gamma.conf')).toBe(false);
    expect(drifted.hashes.get('hosts/beta.conf')).not.toBe(known.hashes.get('hosts/beta.conf'));
    // A file the engine would never write (its name is none of an install's) is not carried into the next generation.
    writeFileSync(join(d1.nginxConfDir, 'current/shops/Handmade.conf'), 'server { listen nonsense; }\n');
    writeFileSync(join(d1.nginxConfDir, 'current/hosts/Handmade.conf'), 'nonsense\n');
    const healed = await pipeline.apply(d1);
    expect(healed.written.sort()).toEqual(['hosts/beta.conf', 'hosts/gamma.conf']);
    expect(readFileSync(beta, 'utf8')).toBe(betaText);
    expect(existsSync(join(d1.nginxConfDir, 'current/shops/Handmade.conf'))).toBe(false);
    expect(existsSync(join(d1.nginxConfDir, 'current/hosts/Handmade.conf'))).toBe(false);
    await testNginxConfig(nginx);
  });

  it('never loads a bad vhost: the others answer throughout, the culprit is named and quarantined', async () => {
    // A new install whose certificate does not exist, and a live one changed to a missing certificate.
    await seedWebInstalls(ds, d1, group, [{ fsName: 'broken', hostname: 'broken.example.org', ip: ip(3), cert: { pem: join(base, 'certs/broken.pem'), key: join(base, 'certs/broken.key') } }]);
    await ds.getRepository(InstallSite).update({ id: (await site('gamma')).id }, { sslPemPath: join(base, 'certs/gamma.pem'), sslKeyPath: join(base, 'certs/gamma.key') });
    await seedWebInstalls(ds, d1, group, [{ fsName: 'delta', hostname: 'delta.example.org', ip: ip(4) }]);
    // And every install's PHP backend weighted anew: no rendered install uses the live upstream any more, but gamma's last good file does.
    const liveUpstreams = readdirSync(join(d1.nginxConfDir, 'current/upstreams'));
    await ds.getRepository(InstallServer).update({ serverId: d1.id }, { weight: 2 });

    let polling = true;
    const failures: string[] = [];
    let answered = 0;
    const poller = (async () => {
      while (polling) {
        for (const [addr, host, fs] of [[ip(1), 'alpha.example.org', 'alpha'], [ip(2), 'beta.example.org', 'beta']] as const) {
          const answer = await fetchSite(addr, host, '/hello.txt').catch((e: Error) => ({ status: 0, body: e.message }));
          if (answer.status === 200 && answer.body === `hello from ${fs}\n`) answered++;
          else failures.push(`${host}: ${answer.status} ${answer.body}`);
        }
        await sleep(10);
      }
    })();
    const report = await pipeline.apply(d1);
    polling = false;
    await poller;
    expect(failures).toEqual([]);
    expect(answered).toBeGreaterThan(2);

    expect(report.nginx).toBe('reloaded');
    expect(report.quarantined.map((q) => `${q.fsName}:${q.keptLastGood}`).sort()).toEqual(['broken:false', 'gamma:true']);
    for (const q of report.quarantined) expect(q.reason).toMatch(/cannot load certificate|No such file/);
    const rows = await ds.getRepository(WebQuarantine).find({ where: { serverId: d1.id } });
    expect(rows.map((r) => r.reason.replace(/install \d+/, 'install N')).sort()).toEqual([
      expect.stringMatching(/^nginx on web1\.example\.net refused install N \(broken\): \[emerg\] cannot load certificate ".*broken\.pem"/),
      expect.stringMatching(/^nginx on web1\.example\.net refused install N \(gamma\): \[emerg\] cannot load certificate ".*gamma\.pem"/),
    ]);
    expect(await ds.getRepository(AuditEvent).count({ where: { action: 'nginx.quarantine' } })).toBe(2);
    // The rest was applied; gamma keeps its last good vhost; broken has none.
    expect(await fetchSite(ip(4), 'delta.example.org', '/hello.txt')).toMatchObject({ status: 200 });
    expect(await fetchSite(ip(1), 'gamma.example.org', '/hello.txt')).toMatchObject({ status: 200, body: 'hello from gamma\n' });
    expect(existsSync(join(d1.nginxConfDir, 'current/shops/broken.conf'))).toBe(false);
    // gamma's last good file maps its hostname to the upstream it had (it had no certificate then), in the block it shares with alpha,
    // whose new file maps alpha to the new upstream (every backend weighted anew).
    expect(existsSync(join(d1.nginxConfDir, 'current/shops/gamma.conf'))).toBe(false);
    const [gammaHosts, alphaHosts] = ['gamma', 'alpha'].map((fs) => readFileSync(join(d1.nginxConfDir, `current/hosts/${fs}.conf`), 'utf8'));
    const upstreamIn = (text: string) => /^[a-z.]+ (php_[0-9a-f]{16}):/m.exec(text)![1];
    expect(upstreamIn(gammaHosts)).not.toBe(upstreamIn(alphaHosts));
    const gammaBlock = /# (groups\/g_[0-9a-f]{16}\.conf)/.exec(gammaHosts)![1]!;
    expect(alphaHosts).toContain(gammaBlock);
    expect(/server_name (.*);/.exec(readFileSync(join(d1.nginxConfDir, 'current', gammaBlock), 'utf8'))![1]).toBe('alpha.example.org gamma.example.org');
    expect(await fetchSite(ip(1), 'gamma.example.org', '/index.php')).toMatchObject({ status: 200, body: 'php:gamma.example.org:/index.php' });
    expect(readdirSync(join(d1.nginxConfDir, 'current/upstreams'))).toEqual(expect.arrayContaining(liveUpstreams));
    expect(readdirSync(join(d1.nginxConfDir, 'current/upstreams'))).toHaveLength(2);
    await expect(fetchSite(ip(3), 'broken.example.org', '/hello.txt')).rejects.toThrow(/ECONNREFUSED/);
    // What is on disk is what nginx accepts: a restart would not break.
    await testNginxConfig(nginx);

    // The saga's view: quarantined installs fail their build's webserver step.
    const rebuilds = app.get(NginxRebuilds);
    const broken = await ds.getRepository(Install).findOneByOrFail({ fsName: 'broken' });
    expect(await rebuilds.vhostState(d1, broken.id)).toMatchObject({ state: 'quarantined' });
    // Support sees it on the install.
    expect((await app.get(InstallsService).get(broken.id)).webQuarantines).toEqual([
      { server: 'web1.example.net', reason: expect.stringMatching(/refused install \d+ \(broken\): \[emerg\] cannot load certificate/), since: expect.any(String) },
    ]);
    const delta = await ds.getRepository(Install).findOneByOrFail({ fsName: 'delta' });
    expect(await rebuilds.vhostState(d1, delta.id)).toEqual({ state: 'live' });
  });

  it('lifts the quarantine once the install passes, and serves it over TLS', async () => {
    // A failing quarantined file costs no full test: tried alone first.
    const still = await pipeline.apply(d1);
    expect(still.nginx).toBe('unchanged');
    expect(still.quarantined.map((q) => q.fsName).sort()).toEqual(['broken', 'gamma']);

    makeCert(join(base, 'certs'), 'broken', 'broken.example.org');
    makeCert(join(base, 'certs'), 'gamma', 'gamma.example.org');
    const report = await pipeline.apply(d1);
    expect(report).toMatchObject({ nginx: 'reloaded', quarantined: [] });
    // The default servers gain broken's address and the HTTPS ones; the block gamma shared with alpha loses gamma.
    expect(report.written.sort()).toEqual(['defaults.conf', expect.stringMatching(/^groups\//), 'shops/broken.conf', 'shops/gamma.conf']);
    // No install's file passes PHP to the old upstream any more: it is gone, with gamma's hosts file; the block it shared with alpha lists alpha alone.
    expect(report.removed.sort()).toEqual(['hosts/gamma.conf', expect.stringMatching(/^upstreams\//)]);
    expect(readdirSync(join(d1.nginxConfDir, 'current/upstreams'))).toHaveLength(1);
    expect(await fetchSite(ip(1), 'gamma.example.org', '/index.php')).toMatchObject({ status: 200, body: 'php:gamma.example.org:/index.php' });
    expect(report.released).toHaveLength(2);
    expect(await ds.getRepository(WebQuarantine).count()).toBe(0);
    expect(await fetchSite(ip(3), 'broken.example.org', '/hello.txt')).toMatchObject({ status: 200, body: 'hello from broken\n' });
    expect(await fetchSite(ip(1), 'gamma.example.org', '/hello.txt', { tls: true })).toMatchObject({ status: 200, body: 'hello from gamma\n' });
    // Over TLS PHP is told so.
    const env = (await fetchSite(ip(1), 'gamma.example.org', '/index.php?env=1', { tls: true })).body;
    expect(env).toContain('HTTPS=on\n');
    expect(env).toContain('REQUEST_SCHEME=https\n');
    expect(env).toContain('SERVER_PORT=443\n');
    // A name no install has gets no certificate and no shop over TLS: the handshake is refused.
    await expect(fetchSite(ip(1), 'stranger.example.com', '/hello.txt', { tls: true })).rejects.toThrow(/alert|handshake|unrecognized name|socket hang up|ECONNRESET/i);
  });

  it("quarantines an install whose code group's manifest does not parse, keeping its last good vhost (never dropped silently)", async () => {
    const [odd] = await seedWebInstalls(ds, d1, await codeGroupFor(ds, d1, 'odd'), [{ fsName: 'odd', hostname: 'odd.example.org', ip: ip(4) }]);
    expect((await pipeline.apply(d1)).nginx).toBe('reloaded');
    expect(await fetchSite(ip(4), 'odd.example.org', '/hello.txt')).toMatchObject({ status: 200, body: 'hello from odd\n' });
    const group = await ds.getRepository(SharedCodeGroup).findOneByOrFail({ name: 'odd' });
    await ds.getRepository(SharedCodeGroup).update({ id: group.id }, { manifest: { version: 1, copy: 'not a list', web: {} } as never });
    const report = await pipeline.apply(d1);
    expect(report.quarantined).toEqual([{ installId: odd!.id, fsName: 'odd', reason: expect.stringMatching(/the manifest of code group odd does not parse/), keptLastGood: true }]);
    expect(await ds.getRepository(WebQuarantine).count({ where: { installId: odd!.id } })).toBe(1);
    expect(await fetchSite(ip(4), 'odd.example.org', '/hello.txt')).toMatchObject({ status: 200, body: 'hello from odd\n' });
    // Mended, it is rendered again and released.
    await ds.getRepository(SharedCodeGroup).update({ id: group.id }, { manifest: group.manifest as never });
    expect((await pipeline.apply(d1)).released).toEqual([odd!.id]);
  });

  it('fails the rebuild when nginx is not running, and never signals what a stale pid file names', async () => {
    // A pid file naming a process that is not an nginx master (the pid was given to another program since).
    const sleeper = spawn('sleep', ['120'], { stdio: 'ignore' });
    const stale = join(base, 'stale.pid');
    writeFileSync(stale, `${sleeper.pid}\n`);
    const other = await ds.getRepository(Server).save(testServer(join(base, 'd9'), 'stale.example.net', ['dispatcher', 'handler'], readTestbed().sshd, { nginxPidFile: stale }));
    const none = await ds.getRepository(Server).save(testServer(join(base, 'd10'), 'none.example.net', ['dispatcher', 'handler'], readTestbed().sshd, { nginxPidFile: join(base, 'no-such.pid') }));
    try {
      const error = await pipeline.apply(other).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(NginxNotRunningError);
      expect((error as Error).message).toMatch(/names a process that is not an nginx master \(stale; not signalled\)/);
      expect(isAlive(sleeper.pid!)).toBe(true);
      await expect(pipeline.apply(none)).rejects.toThrow(/nginx is not running on none\.example\.net \(no process for its pid file/);
    } finally {
      sleeper.kill('SIGKILL');
      await ds.getRepository(Server).delete({ id: In([other.id, none.id]) });
    }
  });

  it('leaves the live config valid when the engine dies between staging and swap, and cleans up after it', async () => {
    const live = current();
    await ds.getRepository(Install).update({ fsName: 'alpha' }, { customRewrites: [{ match: 'exact', from: '/sale', to: '/category/sale', code: 302 }] });
    // The process dies right after staging and testing: nothing is swapped.
    const died = jest.spyOn(DispatcherFiles.prototype, 'swapAndReload').mockRejectedValueOnce(new Error('killed'));
    await expect(pipeline.apply(d1)).rejects.toThrow('killed');
    died.mockRestore();
    expect(current()).toBe(live);
    expect(generations()).toHaveLength(3);
    await testNginxConfig(nginx);
    expect((await fetchSite(ip(1), 'alpha.example.org', '/sale')).status).toBe(200);

    // A staged generation a crash left behind, even a broken one, is never loaded and is pruned by the next run.
    const files = pipeline.files(d1);
    await files.stage('gdeadbeef-0001', null, [{ name: 'shops/alpha.conf', content: 'server { listen nonsense; }\n' }, { name: 'shops.conf', content: '' }]);
    await testNginxConfig(nginx);
    const lastGood = readlinkSync(join(d1.nginxConfDir, 'last-good'));
    const report = await pipeline.apply(d1);
    expect(report).toMatchObject({ nginx: 'reloaded', written: ['shops/alpha.conf'] });
    // Kept: the new generation, the one it replaced (now last-good), and the last-good it had (a failed reload would have gone back to both).
    expect(generations()).toEqual([lastGood, live, `generations/${report.generation}`].map((g) => g.replace('generations/', '')).sort());
    expect(await fetchSite(ip(1), 'alpha.example.org', '/sale')).toMatchObject({ status: 302, location: 'http://alpha.example.org/category/sale' });
    expect(readdirSync(join(d1.nginxConfDir, 'tests'))).toEqual([]);
  });

  it('learns at once when nginx refuses at reload a change that passed alone: current goes back, the whole is tested, the culprit quarantined, the rest applied', async () => {
    const live = current();
    // A file that passes nginx -t alone but not beside the others (a conflict only the whole shows) stands here as one whose alone test is
    // answered "ok": its certificate does not exist, which the reload then meets.
    const [clash] = await seedWebInstalls(ds, d1, group, [{ fsName: 'clash', hostname: 'clash.example.org', ip: ip(7), cert: { pem: join(base, 'certs/clash.pem'), key: join(base, 'certs/clash.key') } }]);
    const [plain] = await seedWebInstalls(ds, d1, group, [{ fsName: 'plain', hostname: 'plain.example.org', ip: ip(7) }]);
    const realTest = DispatcherFiles.prototype.test;
    let passed = false;
    const alone = jest.spyOn(DispatcherFiles.prototype, 'test').mockImplementation(async function (this: DispatcherFiles, generation, only) {
      if (only?.shop === 'shops/clash.conf' && !passed) {
        passed = true;
        return { ok: true, untestable: false, stderr: '' };
      }
      return realTest.call(this, generation, only);
    });
    const logged: string[] = [];
    try {
      const started = Date.now();
      const report = await pipeline.apply(d1, { log: (line) => logged.push(line) });
      // Not the wait for new workers that never come (a minute).
      expect(Date.now() - started).toBeLessThan(20_000);
      expect(logged.join('\n')).toMatch(new RegExp(`refused the new config at reload: \\[emerg\\] \\d+#\\d+: cannot load certificate ".*clash\\.pem".*; current is back on ${live.replace('generations/', '')}, the whole config is tested next`));
      expect(report).toMatchObject({ nginx: 'reloaded', quarantined: [expect.objectContaining({ installId: clash!.id, fsName: 'clash', keptLastGood: false })] });
      expect(passed).toBe(true);
      expect(await fetchSite(ip(7), 'plain.example.org', '/hello.txt')).toMatchObject({ status: 200, body: 'hello from plain\n' });
      expect(await fetchSite(ip(1), 'alpha.example.org', '/hello.txt')).toMatchObject({ status: 200, body: 'hello from alpha\n' });
      expect(existsSync(join(d1.nginxConfDir, 'current/shops/clash.conf'))).toBe(false);
      await testNginxConfig(nginx);
    } finally {
      alone.mockRestore();
      await ds.getRepository(Install).delete({ id: In([clash!.id, plain!.id]) });
    }
    expect((await pipeline.apply(d1)).quarantined).toEqual([]);
  });

  it('loads and records a generation that a run killed after its swap left in place unrecorded', async () => {
    const rebuilds = app.get(NginxRebuilds);
    const row = await rebuilds.configRow(d1.id);
    expect(current()).toBe(`generations/${row.liveGeneration}`);
    // As if the worker died between the swap (and maybe the signal) and the record: the catalog still names the one before.
    await rebuilds.configRow(d1.id, { liveGeneration: row.lastGoodGeneration });
    const workers = descendantsOf(nginx.pid);
    const report = await pipeline.apply(d1);
    expect(report).toMatchObject({ nginx: 'reloaded', generation: row.liveGeneration, filesWritten: 0 });
    expect((await rebuilds.configRow(d1.id)).liveGeneration).toBe(row.liveGeneration);
    expect(descendantsOf(nginx.pid).some((p) => !workers.includes(p))).toBe(true);
    // Recorded: the next run finds nothing to do.
    expect((await pipeline.apply(d1)).nginx).toBe('unchanged');

    // A run killed after its record, before its prune ended, left a staged generation and a test config: a run with nothing to change removes them.
    await pipeline.files(d1).stage('gdeadbeef-0002', null, [{ name: 'shops.conf', content: '' }]);
    expect(readdirSync(join(d1.nginxConfDir, 'tests'))).not.toEqual([]);
    expect((await pipeline.apply(d1)).nginx).toBe('unchanged');
    const kept = [current(), readlinkSync(join(d1.nginxConfDir, 'last-good'))].map((g) => g.replace('generations/', '')).sort();
    expect(generations()).toEqual(kept);
    expect(readdirSync(join(d1.nginxConfDir, 'tests'))).toEqual([]);
  });

  it('prints the diff of a dry run and changes nothing', async () => {
    await ds.getRepository(Install).update({ fsName: 'alpha' }, { customRewrites: [{ match: 'prefix', from: '/old/', to: 'https://alpha.example.org/', code: 301 }] });
    const live = current();
    const gens = generations();
    const report = await pipeline.apply(d1, { dryRun: true });
    expect(report.nginx).toBe('dry-run');
    expect(report.diff).toContain('-    location = /sale { return 302 /category/sale; }');
    expect(report.diff).toContain('+    location ^~ /old/ { return 301 https://alpha.example.org/; }');
    expect(current()).toBe(live);
    expect(generations()).toEqual(gens);
    await ds.getRepository(Install).update({ fsName: 'alpha' }, { customRewrites: [{ match: 'exact', from: '/sale', to: '/category/sale', code: 302 }] });
  });

  it('rolls back to the last good generation in one command', async () => {
    await ds.getRepository(Install).update({ fsName: 'alpha' }, { customRewrites: null });
    const before = current();
    await pipeline.apply(d1);
    expect((await fetchSite(ip(1), 'alpha.example.org', '/sale')).status).toBe(200);
    const result = await pipeline.rollback(d1);
    expect(`generations/${result.generation}`).toBe(before);
    expect(current()).toBe(before);
    expect(await fetchSite(ip(1), 'alpha.example.org', '/sale')).toMatchObject({ status: 302 });
  });

  it('rebuild-nginx: a dry run prints the diff, a rebuild waits until live, a rollback puts last-good back; bad use is refused', async () => {
    const env = cleanEnv({ CATALOG_URL: catalog.url, SECRETS_KEY: TEST_SECRETS_KEY, LOG_LEVEL: 'warn' });
    const cli = (args: string[]) => runCli(['rebuild-nginx', ...args], base, env);
    await pipeline.apply(d1); // after the rollback above: live is the catalog again
    await ds.getRepository(Install).update({ fsName: 'beta' }, { customRewrites: [{ match: 'exact', from: '/promo', to: '/category/promo', code: 301 }] });
    const live = current();
    const dry = await cli(['--dry-run', '--server', String(d1.id)]);
    expect(dry).toMatchObject({ code: 0 });
    // beta's own server block now (a rewrite): its hosts file and the block it shared go.
    expect(dry.stdout).toContain('web1.example.net: 1 file(s) would be written, 2 removed');
    expect(dry.stdout).toContain('+    location = /promo { return 301 /category/promo; }');
    expect(current()).toBe(live);

    // Queued for the worker (this test's context runs one), followed until live.
    const rebuilt = await cli(['--server', String(d1.id), '--timeout', '60']);
    expect(rebuilt).toMatchObject({ code: 0 });
    expect(rebuilt.stdout).toMatch(/web1\.example\.net: rebuild queued \(job \d+\)\nweb1\.example\.net: live on g/);
    expect(await fetchSite(ip(2), 'beta.example.org', '/promo')).toMatchObject({ status: 301 });

    // The rollback is a job on the dispatcher's resource key: it never runs while a rebuild of it does.
    const rolled = await cli(['--rollback', '--server', String(d1.id)]);
    expect(rolled).toMatchObject({ code: 0 });
    expect(rolled.stdout).toMatch(/web1\.example\.net: rollback queued \(job (\d+)\)\nweb1\.example\.net: live generation is g/);
    const rollbackJob = await ds.getRepository(Job).findOneByOrFail({ id: Number(/job (\d+)/.exec(rolled.stdout)![1]) });
    expect(rollbackJob).toMatchObject({ kind: 'nginx.rollback', state: 'done', resourceKey: `nginx:server:${d1.id}` });
    expect(current()).toBe(live);
    expect((await fetchSite(ip(2), 'beta.example.org', '/promo')).status).toBe(200);

    expect(await cli(['--rollback'])).toMatchObject({ code: 1, stderr: expect.stringContaining('--rollback needs --server') });
    expect(await cli(['--server', '999999'])).toMatchObject({ code: 1, stderr: expect.stringContaining('no server 999999') });
    expect(await cli(['--server', 'x; rm -rf /'])).toMatchObject({ code: 1 });
    await ds.getRepository(Install).update({ fsName: 'beta' }, { customRewrites: null });
    await pipeline.apply(d1);
  });

  it('coalesces a burst of rebuild requests into a handful of jobs and reloads', async () => {
    const rebuilds = app.get(NginxRebuilds);
    const since = (await ds.getRepository(Job).maximum('id')) ?? 0;
    const specs = Array.from({ length: 30 }, (_, i) => ({ fsName: `burst${i}`, hostname: `burst${i}.example.org`, ip: ip(10 + (i % 5)) }));
    // Thirty builds reach their webserver step at about the same time, each asking for its rebuild.
    await seedWebInstalls(ds, d1, group, specs);
    for (let i = 0; i < specs.length; i++) await rebuilds.request(d1.id);
    const row = await rebuilds.configRow(d1.id);
    await eventually(async () => (await rebuilds.configRow(d1.id)).appliedGeneration >= row.wantedGeneration, 60_000, 'the burst to be applied');
    const jobs = await ds.getRepository(Job).createQueryBuilder('j').where('j.id > :since AND j.kind = :kind', { since, kind: NGINX_REBUILD.name }).getMany();
    expect(jobs.length).toBeGreaterThanOrEqual(1);
    expect(jobs.length).toBeLessThanOrEqual(5);
    for (const spec of specs) expect(await fetchSite(spec.ip, spec.hostname, '/hello.txt')).toMatchObject({ status: 200 });
    const burst = await ds.getRepository(Install).find({ where: { fsName: In(specs.map((s) => s.fsName)) } });
    for (const install of burst) expect(await rebuilds.vhostState(d1, install.id)).toEqual({ state: 'live' });
  });

  it('skips a dispatcher that is down and rebuilds it when it is back', async () => {
    const rebuilds = app.get(NginxRebuilds);
    await ds.getRepository(Server).update({ id: d1.id }, { state: 'down' });
    await seedWebInstalls(ds, d1, group, [{ fsName: 'late', hostname: 'late.example.org', ip: ip(5) }]);
    const { jobId } = await rebuilds.request(d1.id);
    await eventually(async () => (await ds.getRepository(Job).findOneByOrFail({ id: jobId! })).state === 'done', 30_000, 'the skipped rebuild');
    const row = await rebuilds.configRow(d1.id);
    expect(row.appliedGeneration).toBeLessThan(row.wantedGeneration);
    await expect(fetchSite(ip(5), 'late.example.org', '/hello.txt')).rejects.toThrow(/ECONNREFUSED/);

    await ds.getRepository(Server).update({ id: d1.id }, { state: 'active' });
    // The recurring task does this every few seconds; called here so the test does not wait for it.
    await rebuilds.reconcile();
    await eventually(async () => {
      const r = await rebuilds.configRow(d1.id);
      return r.appliedGeneration >= r.wantedGeneration;
    }, 30_000, 'the rebuild after its return');
    expect(await fetchSite(ip(5), 'late.example.org', '/hello.txt')).toMatchObject({ status: 200, body: 'hello from late\n' });
    expect(await rebuilds.reconcile()).toBe(0);
  });
});
