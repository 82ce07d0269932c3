import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { INestApplicationContext, Type } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { Install, Server, StartupMount } from '@app/catalog';
import { BindMounts, FtpModule, mountPoints } from '@app/ftp';
import { HostsModule } from '@app/hosts';
import { createTestCatalog, TEST_SECRETS_KEY, type TestCatalog } from '../support/catalog.js';
import { startMountNamespace, stopMountNamespace, type MountNamespace } from '../support/mount-namespace.js';
import { cleanEnv, ENGINE_MAIN } from '../support/processes-engine.js';
import { eventually, startQueueContext } from '../support/queue-context.js';
import { testServer } from '../support/server-roots.js';
import { startSshd, stopSshd } from '../support/sshd.js';
import type { SshdServer } from '../support/testbed.js';
import { codeGroupFor, seedWebInstalls } from '../support/web-installs.js';

/**
 * The BindMounts task (the seed's cron_mount) with real `mount --bind`, each
 * test server a private mount namespace (nothing reaches this machine's own
 * mount table): an SSH server (sshd started inside its namespace) driven by
 * the service, and a local server driven by a built engine started inside
 * its namespace (its first pass after boot, as after a reboot).
 */
describe('bind mounts (startup_mounts applied in private mount namespaces)', () => {
  let base: string;
  let catalog: TestCatalog;
  let app: INestApplicationContext;
  let ds: DataSource;
  let mounts: BindMounts;
  let ns: MountNamespace;
  let sshd: SshdServer;
  let s1: Server;
  let install: Install;

  /** What the server's processes see: its mount table, and a path through it. */
  const mountTable = (n: MountNamespace) => mountPoints(readFileSync(`/proc/${n.pid}/mountinfo`, 'utf8'));
  const inside = (n: MountNamespace, ...argv: string[]) => execFileSync('nsenter', [`--mount=/proc/${n.pid}/ns/mnt`, '--', ...argv], { encoding: 'utf8' });
  const home = (server: Server, fsName: string) => join(server.homeRoot, fsName);

  /** A home with a copied directory and a copied file (an image), and their targets in its FTP tree as the ftp step makes them. */
  function writeHomeWithCopies(server: Server, fsName: string): { source: string; target: string }[] {
    const h = home(server, fsName);
    mkdirSync(join(h, 'heavymetal/theme/default'), { recursive: true });
    writeFileSync(join(h, 'heavymetal/theme/default/layout.html'), `<title>${fsName}</title>\n`);
    mkdirSync(join(h, 'html'), { recursive: true });
    writeFileSync(join(h, 'html/logo.png'), Buffer.from([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]));
    mkdirSync(join(h, 'ftp/heavymetal_theme'), { recursive: true });
    writeFileSync(join(h, 'ftp/html_logo.png'), '');
    return [
      { source: join(h, 'heavymetal/theme'), target: join(h, 'ftp/heavymetal_theme') },
      { source: join(h, 'html/logo.png'), target: join(h, 'ftp/html_logo.png') },
    ];
  }

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'bind-mounts-'));
    chmodSync(base, 0o755);
    catalog = await createTestCatalog('mariadb', 'bind_mounts');
    app = await startQueueContext(catalog.url, [], null, [HostsModule.forRoot({ http: false }), FtpModule] as unknown as Type[]);
    ds = app.get(DataSource);
    mounts = app.get(BindMounts);
    ns = await startMountNamespace(join(base, 'ns-s1.log'), []);
    sshd = await startSshd(join(base, 'sshd-s1'), '127.0.123.2', { mountNamespace: ns.pid });
    s1 = await ds.getRepository(Server).save(testServer(join(base, 's1'), 'mounts-s1.example.net', ['dispatcher'], sshd));
    [install] = await seedWebInstalls(ds, s1, await codeGroupFor(ds, s1), [{ fsName: 'mone', hostname: 'one.mounts.example', ip: '127.0.123.10' }], { homes: false });
  });
  afterAll(async () => {
    await app?.close();
    if (sshd) await stopSshd(sshd);
    await stopMountNamespace(ns);
    await catalog?.drop();
    rmSync(base, { recursive: true, force: true });
  });

  it('mounts every row inside the install\'s FTP tree (a directory, and a file on a file), idempotently, and refuses a target outside it', async () => {
    const pairs = writeHomeWithCopies(s1, 'mone');
    const outside = { source: join(home(s1, 'mone'), 'html'), target: join(home(s1, 'mone'), 'not-ftp') };
    mkdirSync(outside.target);
    for (const p of [...pairs, outside]) await ds.getRepository(StartupMount).insert({ installId: install.id, serverId: s1.id, ...p });

    const lines: string[] = [];
    const [run] = await mounts.apply({ log: (l) => lines.push(l) });
    expect(run).toMatchObject({ mounted: pairs.map((p) => p.target), unmounted: [], failed: [] });
    expect(run!.skipped).toEqual([{ target: outside.target, why: expect.stringMatching(/outside an install's FTP tree/) }]);
    expect(lines.join('\n')).toMatch(/mounts-s1\.example\.net: 2 mounted, 0 unmounted/);
    const table = mountTable(ns);
    for (const p of pairs) expect(table.get(p.target)).toBe(1);
    expect(table.has(outside.target)).toBe(false);
    // The server's processes see the copies through the tree; this machine's own mount table is untouched.
    expect(inside(ns, 'cat', join(pairs[0]!.target, 'default/layout.html'))).toBe('<title>mone</title>\n');
    expect(inside(ns, 'od', '-An', '-tx1', pairs[1]!.target).trim()).toBe('89 50 4e 47 01 02 03');
    expect(readdirSync(pairs[0]!.target)).toEqual([]);
    expect(mountPoints(readFileSync('/proc/self/mountinfo', 'utf8')).has(pairs[0]!.target)).toBe(false);
    // Its record, beside the homes.
    expect(readFileSync(join(s1.homeRoot, '.ftp/mounts'), 'utf8')).toBe(pairs.map((p) => `${p.source}\t${p.target}\n`).sort().join(''));

    const [again] = await mounts.apply();
    expect(again).toMatchObject({ mounted: [], unmounted: [], kept: 2, failed: [] });
    for (const p of pairs) expect(mountTable(ns).get(p.target)).toBe(1);
    await ds.getRepository(StartupMount).delete({ target: outside.target });
  }, 60_000);

  it('never touches a mount it did not make: a row whose target is mounted by someone else is left, and stays when its row goes', async () => {
    const foreign = { source: join(base, 'foreign'), target: join(home(s1, 'mone'), 'ftp/foreign') };
    mkdirSync(foreign.source);
    writeFileSync(join(foreign.source, 'theirs.txt'), 'not the engine\'s\n');
    mkdirSync(foreign.target);
    inside(ns, 'mount', '--bind', foreign.source, foreign.target);
    await ds.getRepository(StartupMount).insert({ installId: install.id, serverId: s1.id, ...foreign });
    const [run] = await mounts.apply();
    expect(run!.skipped).toEqual([{ target: foreign.target, why: 'something the engine did not mount is mounted there: left as it is' }]);
    await ds.getRepository(StartupMount).delete({ target: foreign.target });
    const [after] = await mounts.apply();
    expect(after).toMatchObject({ mounted: [], unmounted: [], kept: 2, skipped: [] });
    expect(mountTable(ns).get(foreign.target)).toBe(1);
    expect(inside(ns, 'cat', join(foreign.target, 'theirs.txt'))).toBe('not the engine\'s\n');
    inside(ns, 'umount', foreign.target);
  }, 60_000);

  it('unmounts what lost its row, and mounts everything again after a "reboot" (mounts gone, record kept)', async () => {
    const [dir, file] = (await ds.getRepository(StartupMount).find({ where: { serverId: s1.id }, order: { id: 'ASC' } })).map((r) => ({ source: r.source, target: r.target }));
    await ds.getRepository(StartupMount).delete({ target: file!.target });
    const [run] = await mounts.apply();
    expect(run).toMatchObject({ mounted: [], unmounted: [file!.target], kept: 1 });
    expect(mountTable(ns).has(file!.target)).toBe(false);
    expect(readFileSync(join(s1.homeRoot, '.ftp/mounts'), 'utf8')).toBe(`${dir!.source}\t${dir!.target}\n`);

    // A reboot: the machine's mounts are gone (the record, on disk, is not).
    await ds.getRepository(StartupMount).insert({ installId: install.id, serverId: s1.id, ...file! });
    inside(ns, 'umount', dir!.target);
    expect(mountTable(ns).has(dir!.target)).toBe(false);
    const [back] = await mounts.apply();
    expect(back).toMatchObject({ mounted: [dir!.target, file!.target].sort(), unmounted: [], kept: 0 });
    expect(mountTable(ns).get(dir!.target)).toBe(1);
  }, 60_000);

  it('a local server: a built engine started in the machine\'s namespace mounts its rows on its first pass (as after a reboot)', async () => {
    const machine = await startMountNamespace(join(base, 'ns-local.log'), []);
    const local = await ds.getRepository(Server).save(testServer(join(base, 'l1'), 'mounts-local.example.net', ['handler'], null));
    const [other] = await seedWebInstalls(ds, local, await codeGroupFor(ds, local, 'local'), [{ fsName: 'mlocal', hostname: 'local.mounts.example', ip: '127.0.123.11' }], { homes: false });
    const pairs = writeHomeWithCopies(local, 'mlocal');
    for (const p of pairs) await ds.getRepository(StartupMount).insert({ installId: other!.id, serverId: local.id, ...p });
    const env = cleanEnv({ CATALOG_URL: catalog.url, SECRETS_KEY: TEST_SECRETS_KEY, LOG_LEVEL: 'info', VAR_DIR: join(base, 'engine-var'), ENGINE_ROLES: 'worker,cron', ALLOW_LOCAL_TRANSPORT: 'true', WORKER_POLL_MS: '100', FTP_ENABLED: 'true' });
    const engine = spawn('nsenter', [`--mount=/proc/${machine.pid}/ns/mnt`, '--', process.execPath, ENGINE_MAIN], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    engine.stdout.on('data', (c: Buffer) => (output += c.toString()));
    engine.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const exited = new Promise((resolve) => engine.once('exit', resolve));
    try {
      await eventually(async () => pairs.every((p) => mountTable(machine).get(p.target) === 1), 45_000, `the engine's first BindMounts pass (output: ${output.slice(-2000)})`);
      expect(execFileSync('nsenter', [`--mount=/proc/${machine.pid}/ns/mnt`, '--', 'cat', join(pairs[0]!.target, 'default/layout.html')], { encoding: 'utf8' })).toBe('<title>mlocal</title>\n');
      // Not on this machine's own table: the engine's mounts stayed in its namespace.
      expect(mountPoints(readFileSync('/proc/self/mountinfo', 'utf8')).has(pairs[0]!.target)).toBe(false);
      expect(existsSync(join(local.homeRoot, '.ftp/mounts'))).toBe(true);
    } finally {
      engine.kill('SIGTERM');
      await exited;
      await stopMountNamespace(machine);
    }
  }, 120_000);
});
