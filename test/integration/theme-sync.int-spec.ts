import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jest } from '@jest/globals';
import type { INestApplicationContext, Type } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { Install, InstallServer, RecurringTaskRecord, Server, ThemeSyncState } from '@app/catalog';
import { HostsModule, ServerAccess } from '@app/hosts';
import { homeMarker } from '@app/installs';
import { ThemeSync, ThemeSyncModule, type DigestRequest, type ThemeSyncRun } from '@app/theme-sync';
import { createTestCatalog, TEST_SECRETS_KEY, type TestCatalog } from '../support/catalog.js';
import { cleanEnv, runCli, spawnWorker } from '../support/processes-engine.js';
import { portAnswers, startServerProcess, waitUntil } from '../support/processes.js';
import { startQueueContext } from '../support/queue-context.js';
import { testServer } from '../support/server-roots.js';
import { startSshd, stopSshd } from '../support/sshd.js';
import { readTestbed, type SshdServer } from '../support/testbed.js';
import { codeGroupFor, seedWebInstalls } from '../support/web-installs.js';

/**
 * Theme sync (the seed's cron_slave_sync) between two real SSH servers: the
 * testbed sshd as the installs' master, a second sshd of its own as their
 * other server. Installs are seeded live with homes laid out as a build
 * makes them (marker, copied theme, snippets and asset theme); customers'
 * changes are made on the master's files, as FTP would.
 */
describe('theme sync (two SSH servers, MariaDB catalog)', () => {
  let base: string;
  let catalog: TestCatalog;
  let app: INestApplicationContext;
  let ds: DataSource;
  let sshd2: SshdServer;
  let d1: Server;
  let d2: Server;
  let themes: ThemeSync;
  let access: ServerAccess;
  let installs: Install[];
  const ip = (n: number) => `127.0.122.${n}`;
  const COPIED = ['heavymetal/theme', 'heavymetal/snippets', 'html/mas_assets/theme'];

  /** Relays run (ServerAccess.sync calls) and commands run per server, counted as they pass. */
  let relays: string[] = [];
  let commands: string[] = [];

  const homeOf = (server: Server, install: Install) => join(server.homeRoot, install.fsName);
  const byName = (fsName: string) => installs.find((i) => i.fsName === fsName)!;

  /** A home as the build leaves it on the master: marker, copied paths with files, a writable cache. */
  function masterHome(install: Install): void {
    const home = homeOf(d1, install);
    writeFileSync(join(home, '.shop-install'), homeMarker(install));
    mkdirSync(join(home, 'heavymetal/theme/default'), { recursive: true });
    mkdirSync(join(home, 'heavymetal/snippets'), { recursive: true });
    mkdirSync(join(home, 'html/mas_assets/theme/img'), { recursive: true });
    mkdirSync(join(home, 'heavymetal/cache'), { recursive: true });
    writeFileSync(join(home, 'heavymetal/theme/default/layout.html'), `<title>${install.fsName}</title>\n`);
    writeFileSync(join(home, 'heavymetal/theme/default/style.css'), 'body { color: black }\n');
    writeFileSync(join(home, 'heavymetal/snippets/hello.php'), "<?php echo 'hello';\n");
    writeFileSync(join(home, 'html/mas_assets/theme/img/logo.png'), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 1, 2, 3]));
    chmodSync(join(home, 'heavymetal/snippets/hello.php'), 0o640);
  }

  /** The other server's home as the build's sync step makes it: new, with the install's marker. */
  function otherHome(install: Install, marker: string | null = homeMarker(install)): string {
    const home = homeOf(d2, install);
    mkdirSync(home, { recursive: true, mode: 0o755 });
    if (marker !== null) writeFileSync(join(home, '.shop-install'), marker);
    return home;
  }

  /** Every entry below `dir`: type, mode, and content or link target. */
  function tree(dir: string): Record<string, string> {
    const out: Record<string, string> = {};
    if (!existsSync(dir)) return out;
    const walk = (rel: string) => {
      for (const name of readdirSync(join(dir, rel)).sort()) {
        const path = rel ? `${rel}/${name}` : name;
        const st = lstatSync(join(dir, path));
        const mode = (st.mode & 0o7777).toString(8);
        if (st.isSymbolicLink()) out[path] = `link ${readlinkSync(join(dir, path))}`;
        else if (st.isDirectory()) {
          out[path] = `dir ${mode}`;
          walk(path);
        } else out[path] = `file ${mode} ${readFileSync(join(dir, path)).toString('base64')}`;
      }
    };
    walk('');
    return out;
  }
  const copiedTree = (server: Server, install: Install) => Object.fromEntries(COPIED.map((p) => [p, tree(join(homeOf(server, install), p))]));

  /** One run, with its counters, the relays and commands it made, and what it logged. */
  async function run(options: { retryAfterMs?: number; budgetMs?: number } = {}): Promise<ThemeSyncRun & { lines: string[] }> {
    relays = [];
    commands = [];
    const lines: string[] = [];
    const result = await themes.run({ log: (line) => lines.push(line), ...options });
    return { ...result, lines };
  }

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'theme-sync-'));
    chmodSync(base, 0o755);
    [catalog, sshd2] = await Promise.all([createTestCatalog('mariadb', 'theme_sync'), startSshd(join(base, 'sshd-d2'), ip(2))]);
    app = await startQueueContext(catalog.url, [], null, [HostsModule.forRoot({ http: false }), ThemeSyncModule] as unknown as Type[]);
    ds = app.get(DataSource);
    d1 = await ds.getRepository(Server).save(testServer(join(base, 'd1'), 'ts-d1.example.net', ['dispatcher', 'handler'], readTestbed().sshd, { privateIp: ip(201) }));
    d2 = await ds.getRepository(Server).save(testServer(join(base, 'd2'), 'ts-d2.example.net', ['dispatcher', 'handler'], sshd2, { privateIp: ip(202) }));
    const group = await codeGroupFor(ds, d1, 'themes');
    installs = await seedWebInstalls(ds, d1, group, ['tsone', 'tstwo', 'tsforeign', 'tslinked'].map((fsName) => ({ fsName, hostname: `${fsName}.themes.example`, ip: ip(10) })));
    // Paid installs: their home also lives on d2.
    await ds.getRepository(InstallServer).insert(installs.map((i) => ({ installId: i.id, serverId: d2.id, role: 'replica' as const, weight: 1, poolPort: null, state: 'active' as const })));
    for (const install of installs) masterHome(install);
    for (const install of installs.filter((i) => i.fsName !== 'tsforeign')) otherHome(install);
    themes = app.get(ThemeSync);
    access = app.get(ServerAccess);
    const sync = access.sync.bind(access);
    jest.spyOn(access, 'sync').mockImplementation((from, to, path, options) => {
      relays.push(`${to.hostname}:${path}`);
      return sync(from, to, path, options);
    });
    access.executorFor(d1).observer = (server) => void commands.push(server);
  }, 60_000);

  afterAll(async () => {
    await app?.close();
    if (sshd2) await stopSshd(sshd2);
    await catalog?.drop();
    rmSync(base, { recursive: true, force: true });
  });

  it('copies each install\'s copied paths to its other server, deleting inside them only what the master never had', async () => {
    const one = byName('tsone');
    // On d2 before the first run: a stale file inside a copied directory, and per-server files outside the copied paths.
    mkdirSync(join(homeOf(d2, one), 'heavymetal/theme'), { recursive: true });
    writeFileSync(join(homeOf(d2, one), 'heavymetal/theme/stale.html'), 'stale');
    mkdirSync(join(homeOf(d2, one), 'heavymetal/cache'), { recursive: true });
    writeFileSync(join(homeOf(d2, one), 'heavymetal/cache/local.tmp'), 'this server\'s cache');

    const result = await run();
    expect(result).toMatchObject({ installs: 4, fingerprinted: 1, synced: 3, relays: 9, refused: 1, failed: 0, skipped: 0 });
    for (const fsName of ['tsone', 'tstwo', 'tslinked']) expect(copiedTree(d2, byName(fsName))).toEqual(copiedTree(d1, byName(fsName)));
    expect(existsSync(join(homeOf(d2, one), 'heavymetal/theme/stale.html'))).toBe(false);
    expect(readFileSync(join(homeOf(d2, one), 'heavymetal/cache/local.tmp'), 'utf8')).toBe('this server\'s cache');
    // Nothing else of the master's home was copied (its html/index.php stays the master's).
    expect(existsSync(join(homeOf(d2, one), 'html/index.php'))).toBe(false);
    expect(statSync(join(homeOf(d2, one), 'heavymetal/snippets/hello.php')).mode & 0o777).toBe(0o640);
  });

  it('an unchanged install costs no relay: one fingerprint command on the master, nothing on the other server', async () => {
    const result = await run();
    expect(result).toMatchObject({ synced: 0, relays: 0, unchanged: 3, failed: 0 });
    expect(relays).toEqual([]);
    expect(commands).toEqual([d1.hostname]);
  });

  it('a theme file changed on the master is identical on the other server after the run; only that install is relayed', async () => {
    const two = byName('tstwo');
    const css = (server: Server) => join(homeOf(server, two), 'heavymetal/theme/default/style.css');
    writeFileSync(css(d1), 'body { color: red }\n');
    writeFileSync(join(homeOf(d1, two), 'html/mas_assets/theme/img/new.svg'), '<svg/>');
    unlinkSync(join(homeOf(d1, two), 'heavymetal/snippets/hello.php'));

    const result = await run();
    expect(result).toMatchObject({ synced: 1, relays: 3, unchanged: 2, failed: 0 });
    expect(relays.every((r) => r.includes(`/${two.fsName}/`))).toBe(true);
    expect(readFileSync(css(d2), 'utf8')).toBe('body { color: red }\n');
    expect(copiedTree(d2, two)).toEqual(copiedTree(d1, two));
    expect(existsSync(join(homeOf(d2, two), 'heavymetal/snippets/hello.php'))).toBe(false);
    // One command on each server for the run (the master's fingerprint, the other's marker check),
    // plus the relays' own: each checks its path on both sides (two commands a side) before rsync streams.
    expect(commands.filter((c) => c === d1.hostname)).toHaveLength(1 + 2 * result.relays);
    expect(commands.filter((c) => c === d2.hostname)).toHaveLength(1 + 2 * result.relays);

    // Same size, mtime put back (as an FTP client preserving times does): the ctime still gives it away.
    const before = statSync(css(d1));
    writeFileSync(css(d1), 'body { color: blue}\n');
    utimesSync(css(d1), before.atime, before.mtime);
    expect((await run()).synced).toBe(1);
    expect(readFileSync(css(d2), 'utf8')).toBe('body { color: blue}\n');

    // A copied path the master no longer has is left as it is on the other server (only inside a synced directory is anything deleted).
    writeFileSync(join(homeOf(d1, two), 'heavymetal/snippets/keep.php'), '<?php\n');
    expect((await run()).synced).toBe(1);
    rmSync(join(homeOf(d1, two), 'heavymetal/snippets'), { recursive: true });
    writeFileSync(css(d1), 'body { color: gray }\n');
    const gone = await run();
    expect(gone).toMatchObject({ synced: 1, relays: 2, failed: 0 });
    expect(gone.lines.join('\n')).toMatch(/heavymetal\/snippets is not on ts-d1\.example\.net: left as it is on ts-d2\.example\.net/);
    expect(readFileSync(join(homeOf(d2, two), 'heavymetal/snippets/keep.php'), 'utf8')).toBe('<?php\n');
    expect(readFileSync(css(d2), 'utf8')).toBe('body { color: gray }\n');
    mkdirSync(join(homeOf(d1, two), 'heavymetal/snippets'));
    writeFileSync(join(homeOf(d1, two), 'heavymetal/snippets/keep.php'), '<?php\n');
    expect((await run()).synced).toBe(1);
  });

  it('never follows a symlink out of the home: a link planted in the theme is not copied, a copied path that is a link is not synced', async () => {
    const outside = join(base, 'outside');
    mkdirSync(outside, { recursive: true });
    writeFileSync(join(outside, 'secret.txt'), 'not the customer\'s');
    const linked = byName('tslinked');
    const one = byName('tsone');
    // In tsone's theme: a link out of the home, a link to /etc, and a link inside the theme (kept).
    symlinkSync(join(outside, 'secret.txt'), join(homeOf(d1, one), 'heavymetal/theme/default/secret.txt'));
    symlinkSync('/etc', join(homeOf(d1, one), 'heavymetal/theme/etc'));
    symlinkSync('../../../../outside', join(homeOf(d1, one), 'heavymetal/theme/default/up'));
    symlinkSync('layout.html', join(homeOf(d1, one), 'heavymetal/theme/default/index.html'));
    // In tslinked's: the asset theme itself replaced by a link out of the home.
    const assets = join(homeOf(d1, linked), 'html/mas_assets/theme');
    rmSync(assets, { recursive: true });
    symlinkSync(outside, assets);
    const before = copiedTree(d2, linked)['html/mas_assets/theme'];

    const result = await run();
    expect(result).toMatchObject({ synced: 2, failed: 0 });
    const theme = join(homeOf(d2, one), 'heavymetal/theme');
    expect(lstatSync(join(theme, 'default/secret.txt'), { throwIfNoEntry: false })).toBeUndefined();
    expect(lstatSync(join(theme, 'etc'), { throwIfNoEntry: false })).toBeUndefined();
    expect(lstatSync(join(theme, 'default/up'), { throwIfNoEntry: false })).toBeUndefined();
    expect(readlinkSync(join(theme, 'default/index.html'))).toBe('layout.html');
    // Nothing of what the links point at reached d2.
    const everything = JSON.stringify(tree(homeOf(d2, one)));
    expect(everything).not.toContain(Buffer.from('not the customer\'s').toString('base64'));
    expect(everything).not.toContain('hostname');
    // tslinked: its link was not synced, d2's asset theme is left as it was, and the other paths still synced.
    expect(lstatSync(join(homeOf(d2, linked), 'html/mas_assets/theme')).isDirectory()).toBe(true);
    expect(copiedTree(d2, linked)['html/mas_assets/theme']).toEqual(before);
    expect(result.lines.join('\n')).toMatch(/html\/mas_assets\/theme on ts-d1\.example\.net is reached through a link/);
    expect(readdirSync(outside)).toEqual(['secret.txt']);
    const state = await ds.getRepository(ThemeSyncState).findOneByOrFail({ installId: linked.id, serverId: d2.id });
    expect(state.lastError).toMatch(/reached through a link.*html\/mas_assets\/theme/);
  });

  it('never syncs into a home that lacks the install\'s marker: a foreign directory is untouched', async () => {
    const foreign = byName('tsforeign');
    // A directory of that name on d2 that this install did not make: no marker, then another install's marker.
    const home = otherHome(foreign, null);
    mkdirSync(join(home, 'heavymetal/theme'), { recursive: true });
    writeFileSync(join(home, 'heavymetal/theme/theirs.html'), 'someone else\'s');
    const untouched = tree(home);
    // Refused a moment ago (the first run): asked again only after the retry delay.
    expect(await run()).toMatchObject({ refused: 0, retrying: 1 });
    let result = await run({ retryAfterMs: 0 });
    expect(result).toMatchObject({ refused: 1, failed: 0 });
    expect(relays.filter((r) => r.includes('/tsforeign/'))).toEqual([]);
    expect(tree(home)).toEqual(untouched);
    writeFileSync(join(home, '.shop-install'), homeMarker(byName('tsone')));
    const marked = tree(home);
    result = await run({ retryAfterMs: 0 });
    expect(result.refused).toBe(1);
    expect(tree(home)).toEqual(marked);
    const state = await ds.getRepository(ThemeSyncState).findOneByOrFail({ installId: foreign.id, serverId: d2.id });
    expect(state).toMatchObject({ digest: null, lastError: expect.stringMatching(/lacks this install's marker/) });
    // And a master home without the marker is never read from.
    const one = byName('tsone');
    renameMarker(homeOf(d1, one), '.shop-install.off');
    writeFileSync(join(homeOf(d1, one), 'heavymetal/theme/default/style.css'), 'changed without a marker');
    result = await run();
    expect(result.lines.join('\n')).toMatch(new RegExp(`install ${one.id}: not synced \\(its home on the master lacks`));
    expect(readFileSync(join(homeOf(d2, one), 'heavymetal/theme/default/style.css'), 'utf8')).toBe('body { color: black }\n');
    renameMarker(homeOf(d1, one), '.shop-install', '.shop-install.off');
  });

  it('a server that is down is skipped, and caught up when it is back (marked down, then really unreachable)', async () => {
    const one = byName('tsone');
    const css = (server: Server) => join(homeOf(server, one), 'heavymetal/theme/default/style.css');
    // Marked down in the inventory: not asked at all.
    await ds.getRepository(Server).update({ id: d2.id }, { state: 'down' });
    writeFileSync(css(d1), 'body { color: green }\n');
    let result = await run();
    expect(result).toMatchObject({ synced: 0, relays: 0, skipped: 1 });
    expect(commands).toEqual([d1.hostname]);
    expect(readFileSync(css(d2), 'utf8')).not.toBe('body { color: green }\n');
    await ds.getRepository(Server).update({ id: d2.id }, { state: 'active' });
    result = await run();
    expect(result).toMatchObject({ synced: 1, skipped: 0 });
    expect(readFileSync(css(d2), 'utf8')).toBe('body { color: green }\n');

    // Really gone: its sshd stopped while the inventory says active.
    await stopSshd(sshd2);
    writeFileSync(css(d1), 'body { color: purple }\n');
    const started = Date.now();
    result = await run();
    expect(result).toMatchObject({ synced: 0, relays: 0, skipped: 1, failed: 0 });
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(result.lines.join('\n')).toMatch(/ts-d2\.example\.net did not answer/);
    // Back (the same sshd, same address and keys): caught up.
    const conf = join(base, 'sshd-d2', 'sshd_config');
    const proc = await startServerProcess('/usr/sbin/sshd', ['-D', '-e', '-f', conf], join(base, 'sshd-d2', 'sshd.log'));
    sshd2 = { ...sshd2, pid: proc.pid };
    await waitUntil('sshd back', () => portAnswers(sshd2.port, sshd2.host), { timeoutMs: 15_000, server: proc });
    result = await run();
    expect(result).toMatchObject({ synced: 1, failed: 0 });
    expect(readFileSync(css(d2), 'utf8')).toBe('body { color: purple }\n');
    expect(copiedTree(d2, one)['heavymetal/snippets']).toEqual(copiedTree(d1, one)['heavymetal/snippets']);
  }, 120_000);

  it('a run whose budget is spent leaves the rest for the next run, which catches up', async () => {
    for (const fsName of ['tsone', 'tstwo']) writeFileSync(join(homeOf(d1, byName(fsName)), 'heavymetal/theme/default/late.css'), `/* ${fsName} */\n`);
    const spent = await run({ budgetMs: 0 });
    expect(spent).toMatchObject({ synced: 0, relays: 0, deferred: 2 });
    expect(spent.lines.join('\n')).toMatch(/2 install\(s\) left for the next run/);
    expect(await run()).toMatchObject({ synced: 2, deferred: 0, failed: 0 });
    for (const fsName of ['tsone', 'tstwo']) expect(readFileSync(join(homeOf(d2, byName(fsName)), 'heavymetal/theme/default/late.css'), 'utf8')).toBe(`/* ${fsName} */\n`);
  });

  it('runs from the CLI (tasks:run ThemeSync) in a built engine\'s worker, its output streamed', async () => {
    // The task's row, as an engine with the cron role makes it on first sight (no scheduler here: only this run).
    await ds.getRepository(RecurringTaskRecord).insert({ name: 'ThemeSync', schedule: 'every 60 s', intervalMs: 60_000 });
    const env = cleanEnv({ CATALOG_URL: catalog.url, SECRETS_KEY: TEST_SECRETS_KEY, LOG_LEVEL: 'silent', VAR_DIR: join(base, 'engine-var') });
    const worker = await spawnWorker({ ...env, LOG_LEVEL: 'info' });
    try {
      const one = byName('tsone');
      writeFileSync(join(homeOf(d1, one), 'heavymetal/snippets/cli.php'), '<?php // from the CLI run\n');
      const ran = await runCli(['tasks:run', 'ThemeSync'], process.cwd(), env);
      expect(ran.stderr).toBe('');
      expect(ran.code).toBe(0);
      expect(ran.stdout).toMatch(/task ThemeSync: run queued as job \d+; output follows/);
      expect(ran.stdout).toMatch(/install \d+ \(tsone\): 3 copied path\(s\) synced from ts-d1\.example\.net to ts-d2\.example\.net/);
      expect(ran.stdout).toMatch(/4 install\(s\) on several servers, 1 server\(s\) fingerprinted; .*1 synced \(3 relays\)/);
      expect(readFileSync(join(homeOf(d2, one), 'heavymetal/snippets/cli.php'), 'utf8')).toBe('<?php // from the CLI run\n');
    } finally {
      worker.child.kill('SIGTERM');
      await worker.exited;
    }
  }, 120_000);

  it('measures one fingerprint command over 500 homes against a command or a relay per install (printed)', async () => {
    const N = 500;
    const FILES = 40;
    const requests: DigestRequest[] = [];
    for (let i = 0; i < N; i++) {
      const home = join(d1.homeRoot, `bench${i}`);
      for (const p of COPIED) mkdirSync(join(home, p, 'sub'), { recursive: true });
      writeFileSync(join(home, '.shop-install'), `bench ${i}\n`);
      for (let f = 0; f < FILES; f++) writeFileSync(join(home, COPIED[f % 3]!, f % 2 ? 'sub' : '', `f${f}.css`), `x${f}`);
      requests.push({ installId: 1_000_000 + i, home, paths: COPIED });
    }
    const time = async (what: () => Promise<unknown>, times = 1) => {
      const started = performance.now();
      for (let i = 0; i < times; i++) await what();
      return Math.round(((performance.now() - started) / times) * 10) / 10;
    };
    let digests = new Map();
    const fingerprintMs = await time(async () => (digests = await themes.fingerprint(d1, requests)), 3);
    expect(digests.size).toBe(N);
    const oneCommandMs = await time(() => themes.fingerprint(d1, requests.slice(0, 1)), 20);
    const two = byName('tstwo');
    const relayMs = await time(() => access.sync(d1, d2, join(homeOf(d1, two), 'heavymetal/theme'), { safeLinks: true, checksum: true }), 5);
    const unchangedRunMs = await time(() => run(), 3);
    const measured = {
      homes: N,
      files_per_home: FILES + 3 * 2,
      fingerprint_all_homes_ms: fingerprintMs,
      one_command_ms: oneCommandMs,
      command_per_install_estimate_ms: Math.round(N * oneCommandMs),
      noop_relay_ms: relayMs,
      relay_every_path_estimate_ms: Math.round(N * COPIED.length * relayMs),
      unchanged_run_4_installs_ms: unchangedRunMs,
    };
    console.log(`theme sync measurements: ${JSON.stringify(measured)}`);
    expect(fingerprintMs).toBeLessThan(20_000);
  }, 180_000);
});

function renameMarker(home: string, to: string, from = '.shop-install'): void {
  writeFileSync(join(home, to), readFileSync(join(home, from)));
  unlinkSync(join(home, from));
}
