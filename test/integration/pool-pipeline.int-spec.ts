import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { INestApplicationContext, Type } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { AuditEvent, HandlerConfig, Install, InstallServer, PoolQuarantine, Server, SharedCodeGroup } from '@app/catalog';
import { CodebasesModule } from '@app/codebases';
import { HostsModule } from '@app/hosts';
import { PoolPipeline, PoolRebuilds, PoolReloadError, phpResourceKey, WebserverModule } from '@app/webserver';
import { createTestCatalog, ownInstallIds, type TestCatalog } from '../support/catalog.js';
import { createInstallUser, fastcgiRequest, handlerFpmPid, removeInstallUser, startHandlerFpm, stopHandlerFpm, type HandlerFpm } from '../support/handler-fpm.js';
import { eventually, startQueueContext } from '../support/queue-context.js';
import { testServer } from '../support/server-roots.js';
import { readTestbed } from '../support/testbed.js';
import { codeGroupFor, seedWebInstalls } from '../support/web-installs.js';

/**
 * The php-fpm pool pipeline against real php-fpm masters running as root:
 * h1 is a dispatcher and handler reached over SSH (its pools listen on
 * unix sockets), h2 a handler on this machine (pools on ports of
 * 127.0.105.20, open to h1's private IP only). Installs get real system
 * users; their PHP writes files as them.
 */
describe('php-fpm pool pipeline on running masters', () => {
  let base: string;
  let catalog: TestCatalog;
  let app: INestApplicationContext;
  let ds: DataSource;
  let h1: Server;
  let h2: Server;
  let fpm1: HandlerFpm;
  let fpm2: HandlerFpm;
  let group: SharedCodeGroup;
  let pipeline: PoolPipeline;
  const ids: number[] = [];
  const H1_IP = '127.0.105.10';
  const H2_IP = '127.0.105.20';
  const OTHER_IP = '127.0.105.11';

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'pool-pipeline-'));
    chmodSync(base, 0o755);
    catalog = await createTestCatalog('mariadb', 'pool_pipeline');
    app = await startQueueContext(catalog.url, [], { concurrency: 2, pollMs: 20, reapEveryMs: 500 }, [HostsModule.forRoot({ http: false }), CodebasesModule.forRoot({ http: false }), WebserverModule] as unknown as Type[]);
    ds = app.get(DataSource);
    // Install ids (and so the users shop<id>) in this file's own range: other suites make shop<id> users too.
    await ownInstallIds(ds, 105001);
    const poolDir1 = join(base, 'h1/srv/php-pools');
    const poolDir2 = join(base, 'h2/srv/php-pools');
    fpm1 = await startHandlerFpm(join(base, 'fpm1'), poolDir1);
    fpm2 = await startHandlerFpm(join(base, 'fpm2'), poolDir2);
    h1 = await ds.getRepository(Server).save(testServer(join(base, 'h1'), 'h1.example.net', ['dispatcher', 'handler'], readTestbed().sshd, { privateIp: H1_IP, phpFpmPoolDir: poolDir1, phpFpmPidFile: fpm1.pidFile }));
    h2 = await ds.getRepository(Server).save(testServer(join(base, 'h2'), 'h2.example.net', ['cloud'], null, { privateIp: H2_IP, phpFpmPoolDir: poolDir2, phpFpmPidFile: fpm2.pidFile }));
    group = await codeGroupFor(ds, h1);
    const manifest = { ...group.manifest, php: { settings: [{ name: 'memory_limit', value: '96M' }, { name: 'disable_functions', value: 'exec,shell_exec' }] } };
    await ds.getRepository(SharedCodeGroup).update({ id: group.id }, { manifest } as never);
    pipeline = app.get(PoolPipeline);
  });
  afterAll(async () => {
    await app?.close();
    if (fpm1) await stopHandlerFpm(fpm1);
    if (fpm2) await stopHandlerFpm(fpm2);
    for (const id of ids) removeInstallUser(id);
    await catalog?.drop();
    if (!process.env.KEEP_TEST_DIRS) rmSync(base, { recursive: true, force: true });
  });

  /** Installs on h1 (master) and on h2 (a cloud row with a pool port), each with its user (unless told not to) and a home holding probe scripts. */
  const seed = async (names: string[], options: { user?: boolean; port?: (i: number) => number } = {}) => {
    const installs = await seedWebInstalls(ds, h1, group, names.map((fsName, i) => ({ fsName, hostname: `${fsName}.example.org`, ip: '127.0.105.100' })), { homes: false });
    for (const [i, install] of installs.entries()) {
      ids.push(install.id);
      const port = options.port ? options.port(i) : 21000 + (install.id % 1000);
      await ds.getRepository(InstallServer).insert({ installId: install.id, serverId: h2.id, role: 'cloud', weight: 1, poolPort: port, state: 'active' });
      for (const server of [h1, h2]) {
        const home = join(server.homeRoot, install.fsName);
        const user = options.user === false ? null : createInstallUser(install.id, home);
        mkdirSync(join(home, 'html'), { recursive: true, mode: 0o755 });
        mkdirSync(join(home, 'data'), { recursive: true, mode: 0o755 });
        mkdirSync(join(home, '.php/sessions'), { recursive: true, mode: 0o700 });
        mkdirSync(join(home, '.php/tmp'), { recursive: true, mode: 0o700 });
        if (user) {
          const uid = Number(execFileSync('id', ['-u', user]).toString());
          const gid = Number(execFileSync('id', ['-g', user]).toString());
          for (const d of ['data', '.php', '.php/sessions', '.php/tmp']) chownSync(join(home, d), uid, gid);
        }
        writeFileSync(join(home, 'html/secret.txt'), `secret of ${install.fsName}\n`, { mode: 0o644 });
        writeFileSync(
          join(home, 'html/probe.php'),
          `<?php
$out = __DIR__ . '/../data/written.txt';
file_put_contents($out, 'written by ' . $_SERVER['SERVER_NAME']);
$other = $_GET['other'] ?? '';
echo json_encode(['own' => @file_get_contents(__DIR__ . '/secret.txt'), 'other' => $other === '' ? null : @file_get_contents($other),
  'memory_limit' => ini_get('memory_limit'), 'exec' => function_exists('exec'), 'use_cwd' => ini_get('opcache.use_cwd'), 'basedir' => ini_get('open_basedir')]);\n`,
          { mode: 0o644 },
        );
      }
    }
    return installs;
  };
  const socketOf = (fsName: string) => join(h1.phpFpmPoolDir!, 'run', `${fsName}.sock`);
  const probe = async (target: string | { host: string; port: number; localAddress?: string }, server: Server, fsName: string, other = '') => {
    const answer = await fastcgiRequest(target, join(server.homeRoot, fsName, 'html/probe.php'), { SERVER_NAME: fsName, QUERY_STRING: other ? `other=${other}` : '' });
    return JSON.parse(answer.body) as { own: string | false; other: string | false | null; memory_limit: string; exec: boolean; use_cwd: string; basedir: string };
  };
  const ownerOf = (path: string) => execFileSync('stat', ['-c', '%U', path]).toString().trim();
  const current = (server: Server) => readlinkSync(join(server.phpFpmPoolDir!, 'current'));

  it('puts every install pool live: PHP runs as the install user, confined to its home, with its manifest settings', async () => {
    const [alpha, beta] = await seed(['alpha', 'beta']);
    const report1 = await pipeline.apply(h1);
    expect(report1).toMatchObject({ fpm: 'reloaded', filesWritten: 2, written: ['alpha.conf', 'beta.conf'], quarantined: [] });
    expect(current(h1)).toBe(`generations/${report1.generation}`);
    const report2 = await pipeline.apply(h2);
    expect(report2).toMatchObject({ fpm: 'reloaded', filesWritten: 2 });

    // Over the socket on h1 (a dispatcher): nginx's user owns it.
    expect(statSync(socketOf('alpha')).mode & 0o777).toBe(0o660);
    expect(ownerOf(socketOf('alpha'))).toBe('www-data');
    const a = await probe(socketOf('alpha'), h1, 'alpha', join(h1.homeRoot, 'beta/html/secret.txt'));
    expect(a).toMatchObject({ own: 'secret of alpha\n', other: false, memory_limit: '96M', exec: false, use_cwd: '1' });
    expect(a.basedir).toBe(`${join(h1.homeRoot, 'alpha')}:${join(h1.sharedCodeRoot, 'web/releases')}:${join(h1.homeRoot, 'alpha/.php/tmp')}`);
    expect(ownerOf(join(h1.homeRoot, 'alpha/data/written.txt'))).toBe(`shop${alpha!.id}`);
    const b = await probe(socketOf('beta'), h1, 'beta', join(h1.homeRoot, 'alpha/data/written.txt'));
    expect(b).toMatchObject({ own: 'secret of beta\n', other: false });
    expect(ownerOf(join(h1.homeRoot, 'beta/data/written.txt'))).toBe(`shop${beta!.id}`);

    // On h2's private IP, from the dispatcher's private IP only.
    const port = (await ds.getRepository(InstallServer).findOneByOrFail({ installId: beta!.id, serverId: h2.id })).poolPort!;
    expect(readFileSync(join(h2.phpFpmPoolDir!, 'current/beta.conf'), 'utf8')).toContain(`listen = ${H2_IP}:${port}\nlisten.allowed_clients = ${H1_IP}\n`);
    expect(await probe({ host: H2_IP, port, localAddress: H1_IP }, h2, 'beta')).toMatchObject({ own: 'secret of beta\n' });
    expect(ownerOf(join(h2.homeRoot, 'beta/data/written.txt'))).toBe(`shop${beta!.id}`);
    // A client not in listen.allowed_clients gets no answer: php-fpm closes the connection, seen as an empty answer or a reset.
    const refused = await fastcgiRequest({ host: H2_IP, port, localAddress: OTHER_IP }, join(h2.homeRoot, 'beta/html/probe.php'), {}, 3000).then((r) => r.body, (e: NodeJS.ErrnoException) => e.code ?? String(e));
    expect(['', 'ECONNRESET']).toContain(refused);

    expect(await ds.getRepository(HandlerConfig).findOneByOrFail({ serverId: h1.id })).toMatchObject({ liveGeneration: report1.generation });
    const rebuilds = app.get(PoolRebuilds);
    expect(await rebuilds.poolState(alpha!.id, h1.id)).toEqual({ state: 'live' });
    expect(await rebuilds.poolState(alpha!.id, h2.id)).toEqual({ state: 'live' });
  });

  it('writes one file for a one-install change, and reloads nothing when nothing changed', async () => {
    const beta = await ds.getRepository(Install).findOneByOrFail({ fsName: 'beta' });
    const before = current(h2);
    await ds.getRepository(InstallServer).update({ installId: beta.id, serverId: h2.id }, { poolPort: 21999 });
    const report = await pipeline.apply(h2);
    expect(report).toMatchObject({ fpm: 'reloaded', filesWritten: 1, written: ['beta.conf'], removed: [] });
    expect(readlinkSync(join(h2.phpFpmPoolDir!, 'last-good'))).toBe(before);
    const inode = (gen: string, f: string) => statSync(join(h2.phpFpmPoolDir!, gen, f)).ino;
    expect(inode(before, 'alpha.conf')).toBe(inode(current(h2), 'alpha.conf'));
    expect(inode(before, 'beta.conf')).not.toBe(inode(current(h2), 'beta.conf'));
    expect(await probe({ host: H2_IP, port: 21999, localAddress: H1_IP }, h2, 'beta')).toMatchObject({ own: 'secret of beta\n' });

    const again = await pipeline.apply(h2);
    expect(again).toMatchObject({ fpm: 'unchanged', generation: null, filesWritten: 0 });
  });

  it('quarantines and names a pool php-fpm refuses; every other pool keeps serving; released once it passes', async () => {
    const [gamma] = await seed(['gamma'], { user: false });
    const pidBefore = handlerFpmPid(fpm1);
    const report = await pipeline.apply(h1);
    expect(report.fpm).toBe('unchanged');
    expect(report.quarantined).toEqual([{ installId: gamma!.id, fsName: 'gamma', reason: expect.stringMatching(new RegExp(`\\[pool gamma\\] cannot get uid for user 'shop${gamma!.id}'`)), keptLastGood: false }]);
    const row = await ds.getRepository(PoolQuarantine).findOneByOrFail({ serverId: h1.id, installId: gamma!.id });
    expect(row.reason).toMatch(/^php-fpm on h1\.example\.net refused the pool of install \d+ \(gamma\): ERROR: \[pool gamma\] cannot get uid/);
    expect(await ds.getRepository(AuditEvent).count({ where: { action: 'php.quarantine' } })).toBe(1);
    expect(existsSync(join(h1.phpFpmPoolDir!, 'current/gamma.conf'))).toBe(false);
    expect(handlerFpmPid(fpm1)).toBe(pidBefore);
    expect(await probe(socketOf('alpha'), h1, 'alpha')).toMatchObject({ own: 'secret of alpha\n' });
    expect(await app.get(PoolRebuilds).poolState(gamma!.id, h1.id)).toMatchObject({ state: 'quarantined' });

    // Its user made (what the saga's step does), the next rebuild, through the queue, lifts it.
    createInstallUser(gamma!.id, join(h1.homeRoot, 'gamma'));
    execFileSync('chown', ['-R', `shop${gamma!.id}:shop${gamma!.id}`, join(h1.homeRoot, 'gamma/data'), join(h1.homeRoot, 'gamma/.php')]);
    const rebuilds = app.get(PoolRebuilds);
    await rebuilds.request([h1.id]);
    await rebuilds.request([h1.id]);
    await eventually(async () => (await rebuilds.poolState(gamma!.id, h1.id)).state === 'live', 30_000, 'gamma live');
    expect(await ds.getRepository(PoolQuarantine).countBy({ serverId: h1.id })).toBe(0);
    expect(await probe(socketOf('gamma'), h1, 'gamma')).toMatchObject({ own: 'secret of gamma\n' });
    const jobs = await ds.query('SELECT COUNT(*) AS n FROM jobs WHERE resource_key = ?', [phpResourceKey(h1.id)]);
    expect(Number(jobs[0].n)).toBeLessThanOrEqual(2);
  });

  it('says so when no master runs (or the pid file names another process), and leaves the pools in place for its start', async () => {
    const h3 = await ds.getRepository(Server).save(testServer(join(base, 'h3'), 'h3.example.net', ['cloud'], null, { privateIp: '127.0.105.30', phpFpmPoolDir: join(base, 'h3/srv/php-pools'), phpFpmPidFile: join(base, 'h3/srv/php-pools/php-fpm.pid') }));
    mkdirSync(h3.phpFpmPoolDir!, { recursive: true });
    const alpha = await ds.getRepository(Install).findOneByOrFail({ fsName: 'alpha' });
    await ds.getRepository(InstallServer).insert({ installId: alpha.id, serverId: h3.id, role: 'cloud', weight: 1, poolPort: 22001, state: 'active' });
    const report = await pipeline.apply(h3);
    expect(report).toMatchObject({ fpm: 'not-running', filesWritten: 1, written: ['alpha.conf'] });
    expect(readFileSync(join(h3.phpFpmPoolDir!, 'current/alpha.conf'), 'utf8')).toContain('listen = 127.0.105.30:22001\n');
    expect((await ds.getRepository(HandlerConfig).findOneByOrFail({ serverId: h3.id })).liveGeneration).toBe(report.generation);
    // A pid file naming a live process that is no php-fpm master (this one): never signalled.
    writeFileSync(h3.phpFpmPidFile!, `${process.pid}\n`);
    await ds.getRepository(InstallServer).update({ installId: alpha.id, serverId: h3.id }, { poolPort: 22002 });
    expect(await pipeline.apply(h3)).toMatchObject({ fpm: 'stale-pid', filesWritten: 1 });
  });

  it('goes back to the last good pools when the master fails to load the new ones (over SSH)', async () => {
    const before = current(h1);
    await seed(['delta']);
    // A directory where delta's socket goes: php-fpm -t cannot know, the reloaded master cannot bind it and exits.
    mkdirSync(socketOf('delta'));
    await expect(pipeline.apply(h1)).rejects.toThrow(PoolReloadError);
    expect(current(h1)).toBe(before);
    expect((await ds.getRepository(HandlerConfig).findOneByOrFail({ serverId: h1.id })).liveGeneration).toBe(before.replace('generations/', ''));
    // The master runs again (started by the pipeline), on the last good pools.
    expect(handlerFpmPid(fpm1)).not.toBeNull();
    expect(await probe(socketOf('alpha'), h1, 'alpha')).toMatchObject({ own: 'secret of alpha\n' });
    expect(await probe(socketOf('gamma'), h1, 'gamma')).toMatchObject({ own: 'secret of gamma\n' });

    rmSync(socketOf('delta'), { recursive: true });
    const report = await pipeline.apply(h1);
    expect(report).toMatchObject({ fpm: 'reloaded', written: ['delta.conf'] });
    expect(await probe(socketOf('delta'), h1, 'delta')).toMatchObject({ own: 'secret of delta\n' });
  });

  it('quarantines a pool whose port another process listens on, before any reload; the others go live', async () => {
    const blocker: NetServer = createServer();
    await new Promise<void>((resolve) => blocker.listen(21500, H2_IP, resolve));
    const [epsilon] = await seed(['epsilon'], { port: () => 21500 });
    try {
      const report = await pipeline.apply(h2);
      expect(report.fpm).toBe('reloaded');
      expect(report.written).toContain('delta.conf');
      expect(report.quarantined).toEqual([{ installId: epsilon!.id, fsName: 'epsilon', reason: `its port ${H2_IP}:21500 is taken by another process on h2.example.net`, keptLastGood: false }]);
      expect(existsSync(join(h2.phpFpmPoolDir!, 'current/epsilon.conf'))).toBe(false);
      const deltaPort = (await ds.getRepository(InstallServer).findOneByOrFail({ installId: (await ds.getRepository(Install).findOneByOrFail({ fsName: 'delta' })).id, serverId: h2.id })).poolPort!;
      expect(await probe({ host: H2_IP, port: deltaPort, localAddress: H1_IP }, h2, 'delta')).toMatchObject({ own: 'secret of delta\n' });
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
    // The port free again, the next apply loads it.
    const report = await pipeline.apply(h2);
    expect(report).toMatchObject({ fpm: 'reloaded', written: ['epsilon.conf'], quarantined: [] });
    expect(report.released).toEqual([epsilon!.id]);
    expect(await probe({ host: H2_IP, port: 21500, localAddress: H1_IP }, h2, 'epsilon')).toMatchObject({ own: 'secret of epsilon\n' });
  });
});
