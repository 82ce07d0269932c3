import { spawn } from 'node:child_process';
import { existsSync, linkSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { arch } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import { withAbortSignal } from '@app/common';
import { CommandAbortedError, CommandFailedError, HostTimeoutError, PathExistsError, UnsafePathError, type HostExecutor, type ServerRoots } from '@app/hosts';

/** Arguments that must reach the program as one literal word each. */
export const HOSTILE_ARGUMENTS = [
  '; rm -rf /',
  "'; touch CANARY; '",
  '$(touch CANARY)',
  '`touch CANARY`',
  "it's",
  '"double" and \\backslash\\',
  'line one\nline two',
  '$HOME ${HOME} $((1+1))',
  '* ? [a-z] ~root',
  '| & && || > CANARY < >> 2>&1',
  '-rf',
  '',
  ' spaced ',
  'tab\there',
  '\u00e9t\u00e9 \u{1F600}',
];

export interface ExecutorFixture {
  executor: HostExecutor;
  server: ServerRoots;
  /** A directory outside the server's roots, visible to the test, to prove nothing escapes. */
  outside: string;
}

/** Every entry under `dir` with its type, owner, mode and content (or link target): what "nothing changed" compares. */
export function snapshotTree(dir: string): string[] {
  const out: string[] = [];
  const visit = (path: string) => {
    const st = lstatSync(path);
    const what = st.isSymbolicLink() ? `-> ${readlinkSync(path)}` : st.isFile() ? readFileSync(path, 'utf8') : '';
    out.push(`${relative(dir, path) || '.'} ${st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : 'f'} ${st.uid}:${st.gid} ${(st.mode & 0o7777).toString(8)} ${what}`);
    if (st.isDirectory()) for (const name of readdirSync(path).sort()) visit(join(path, name));
  };
  visit(dir);
  return out;
}

/** A process that exists and is not a zombie waiting for its parent. */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

async function waitFor(what: string, ok: () => boolean, withinMs: number): Promise<number> {
  const started = Date.now();
  while (!ok()) {
    if (Date.now() - started > withinMs) throw new Error(`${what}: not within ${withinMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return Date.now() - started;
}

/** Linux's renameat2 syscall number on this machine, for RENAME_EXCHANGE (null: flip with plain renames). */
const RENAMEAT2: number | null = arch() === 'x64' ? 316 : arch() === 'arm64' ? 276 : null;

/**
 * A tenant's loop: `<dir>/w` flips between a real directory and a symlink to
 * somewhere else (swapped atomically with `w.alt`), as fast as it can, until
 * the time is up; prints the number of flips.
 */
const FLIPPER = String.raw`
my ($dir, $ms, $nr) = @ARGV;
chdir $dir or die "$dir: $!";
my $end = time + $ms / 1000;
my ($n, $w, $alt) = (0, 'w', 'w.alt');
while (time < $end) {
  for (1 .. 200) {
    if ($nr) { syscall($nr, -100, $w, -100, $alt, 2) == 0 or die "renameat2: $!"; }
    else { rename('w', 'w.tmp'); rename('w.alt', 'w'); rename('w.tmp', 'w.alt'); }
    $n++;
  }
}
print $n;
`;

/**
 * The behaviour every executor adapter must have, against a real filesystem.
 * `fixture()` gives a server whose roots are fresh, empty directories.
 */
export function executorContract(name: string, fixture: () => Promise<ExecutorFixture>, done: () => Promise<void> = async () => {}) {
  describe(`${name}: executor contract`, () => {
    let f: ExecutorFixture;
    let home: string;
    beforeAll(async () => {
      f = await fixture();
      home = f.server.homeRoot;
    });
    afterAll(done);

    it('passes every argument as one literal word, and touches nothing else', async () => {
      for (const arg of HOSTILE_ARGUMENTS) {
        const withCanary = arg.replace('CANARY', join(f.outside, 'canary'));
        expect((await f.executor.mustRun(f.server, ['printf', '%s', withCanary], { cwd: home })).toString()).toBe(withCanary);
      }
      expect(readdirSync(f.outside)).toEqual([]);
    });

    it('returns exit code, stdout and stderr; feeds stdin; passes env', async () => {
      const r = await f.executor.run(f.server, ['sh', '-c', 'echo out; echo err >&2; exit 3']);
      expect(r).toEqual({ exitCode: 3, stdout: 'out\n', stderr: 'err\n' });
      expect(await f.executor.mustRun(f.server, ['cat'], { input: 'from stdin' })).toBe('from stdin');
      expect(await f.executor.mustRun(f.server, ['sh', '-c', 'printf %s "$SHOP_NAME"'], { env: { SHOP_NAME: "O'Brien $x" } })).toBe("O'Brien $x");
      expect((await f.executor.run(f.server, ['no-such-program-here'])).exitCode).toBe(127);
    });

    it('names the server, the command and its stderr when a command fails', async () => {
      const failure = f.executor.mustRun(f.server, ['ls', join(home, 'missing')]);
      await expect(failure).rejects.toBeInstanceOf(CommandFailedError);
      await expect(failure).rejects.toThrow(new RegExp(`${f.server.hostname}: \`ls .*missing\` exited 2: .*No such file`));
    });

    it('gives up on a command at its timeout, naming the server', async () => {
      const started = Date.now();
      await expect(f.executor.run(f.server, ['sleep', '10'], { timeoutMs: 300 })).rejects.toBeInstanceOf(HostTimeoutError);
      expect(Date.now() - started).toBeLessThan(5_000);
    });

    it('refuses bad environment names and working directories outside the roots', async () => {
      await expect(f.executor.run(f.server, ['true'], { env: { 'A;B': '1' } })).rejects.toThrow(/environment variable name/);
      await expect(f.executor.run(f.server, ['true'], { cwd: '/etc' })).rejects.toBeInstanceOf(UnsafePathError);
    });

    it('writes files atomically with mode and owner, and reads them back', async () => {
      const path = join(home, 'shop1', 'heavymetal', 'config.php');
      await f.executor.mkdir(f.server, join(home, 'shop1', 'heavymetal'), { mode: 0o755 });
      await f.executor.writeFile(f.server, path, "<?php $name = 'O\\'Brien';\n", { mode: 0o640, owner: 'nobody' });
      expect(readFileSync(path, 'utf8')).toBe("<?php $name = 'O\\'Brien';\n");
      expect(statSync(path).mode & 0o777).toBe(0o640);
      expect(statSync(path).uid).toBe(65534);
      await f.executor.writeFile(f.server, path, 'v2');
      expect((await f.executor.readFile(f.server, path)).toString()).toBe('v2');
      expect(readdirSync(join(home, 'shop1', 'heavymetal'))).toEqual(['config.php']);
      expect(await f.executor.exists(f.server, path)).toBe(true);
      expect(await f.executor.exists(f.server, join(home, 'nope'))).toBe(false);
    });

    it('refuses paths outside the roots, with .., NUL, or escaping through a symlink', async () => {
      const bad = ['/etc/cron.daily/evil', `${home}/../escape`, `${home}/a\0b`, 'relative/path'];
      for (const path of bad) await expect(f.executor.writeFile(f.server, path, 'x')).rejects.toBeInstanceOf(UnsafePathError);
      symlinkSync(f.outside, join(home, 'sneaky'));
      await expect(f.executor.writeFile(f.server, join(home, 'sneaky', 'owned'), 'x')).rejects.toThrow(/is a symlink/);
      await expect(f.executor.mkdir(f.server, join(home, 'sneaky', 'dir'))).rejects.toThrow(/is a symlink/);
      expect(readdirSync(f.outside)).toEqual([]);
    });

    it('makes and atomically replaces symlinks, only to targets inside the roots', async () => {
      mkdirSync(join(f.server.sharedCodeRoot, 'code_share_free_1', 'heavymetal', 'lib'), { recursive: true });
      mkdirSync(join(f.server.sharedCodeRoot, 'code_share_free_2', 'heavymetal', 'lib'), { recursive: true });
      const link = join(home, 'shop2', 'lib');
      await f.executor.mkdir(f.server, join(home, 'shop2'));
      await f.executor.symlink(f.server, join(f.server.sharedCodeRoot, 'code_share_free_1', 'heavymetal', 'lib'), link);
      await f.executor.symlink(f.server, join(f.server.sharedCodeRoot, 'code_share_free_2', 'heavymetal', 'lib'), link);
      expect(lstatSync(link).isSymbolicLink()).toBe(true);
      expect(readdirSync(join(home, 'shop2'))).toEqual(['lib']);
      expect((await f.executor.mustRun(f.server, ['readlink', link])).trim()).toBe(join(f.server.sharedCodeRoot, 'code_share_free_2', 'heavymetal', 'lib'));
      await expect(f.executor.symlink(f.server, '/etc/passwd', join(home, 'shop2', 'pw'))).rejects.toBeInstanceOf(UnsafePathError);
    });

    it('clears the temporary files and links a killed earlier write left beside its target', async () => {
      const dir = join(home, 'stale');
      await f.executor.mkdir(f.server, dir);
      writeFileSync(join(dir, '.config.php.tmp-0123456789ab'), 'half written');
      writeFileSync(join(dir, '.other.php.tmp-0123456789ab'), 'not ours');
      symlinkSync('/nowhere', join(dir, '.lib.lnk-0123456789ab'));
      symlinkSync('/nowhere', join(dir, 'theme.lnk-4242'));
      await f.executor.writeFile(f.server, join(dir, 'config.php'), 'x');
      await f.executor.symlink(f.server, join(f.server.sharedCodeRoot, 'lib'), join(dir, 'lib'));
      await f.executor.symlinkMany(f.server, [{ target: join(f.server.sharedCodeRoot, 'theme'), path: join(dir, 'theme') }]);
      expect(readdirSync(dir).sort()).toEqual(['.other.php.tmp-0123456789ab', 'config.php', 'lib', 'theme']);
    });

    it('makes many symlinks at once, all checked before any is made', async () => {
      const shared = join(f.server.sharedCodeRoot, 'code_share_free_3');
      mkdirSync(join(shared, 'lib'), { recursive: true });
      await f.executor.mkdir(f.server, join(home, 'shop5', 'heavymetal'));
      const links = Array.from({ length: 60 }, (_, i) => ({ target: join(shared, 'lib', `f ${i}'$(x)`), path: join(home, 'shop5', 'heavymetal', `f ${i}'$(x)`) }));
      await f.executor.symlinkMany(f.server, links);
      expect(readdirSync(join(home, 'shop5', 'heavymetal')).length).toBe(60);
      expect((await f.executor.mustRun(f.server, ['readlink', links[7]!.path])).trim()).toBe(links[7]!.target);
      const bad = [...links.slice(0, 2).map((l) => ({ ...l, path: l.path + '-new' })), { target: '/etc/shadow', path: join(home, 'shop5', 'pw') }];
      await expect(f.executor.symlinkMany(f.server, bad)).rejects.toBeInstanceOf(UnsafePathError);
      expect(readdirSync(join(home, 'shop5', 'heavymetal')).length).toBe(60);
      // Relative targets stay relative, and are checked where they resolve.
      const rel = relative(join(home, 'shop5'), join(shared, 'lib'));
      await f.executor.symlinkMany(f.server, [{ target: rel, path: join(home, 'shop5', 'lib') }]);
      expect((await f.executor.mustRun(f.server, ['readlink', join(home, 'shop5', 'lib')])).trim()).toBe(rel);
      expect(statSync(join(home, 'shop5', 'lib')).isDirectory()).toBe(true);
      const escape = relative(join(home, 'shop5'), '/etc');
      await expect(f.executor.symlinkMany(f.server, [{ target: escape, path: join(home, 'shop5', 'etc') }])).rejects.toBeInstanceOf(UnsafePathError);
      await expect(f.executor.symlink(f.server, escape, join(home, 'shop5', 'etc'))).rejects.toBeInstanceOf(UnsafePathError);
    });

    it('removes trees inside the roots, never a root, never through a link, and tolerates "already gone"', async () => {
      writeFileSync(join(f.outside, 'keep'), 'canary');
      await f.executor.mkdir(f.server, join(home, 'shop3', 'tmp'));
      symlinkSync(f.outside, join(home, 'shop3', 'tmp', 'out'));
      await f.executor.remove(f.server, join(home, 'shop3'));
      expect(await f.executor.exists(f.server, join(home, 'shop3'))).toBe(false);
      expect(readFileSync(join(f.outside, 'keep'), 'utf8')).toBe('canary');
      await f.executor.remove(f.server, join(home, 'shop3'));
      await expect(f.executor.remove(f.server, home)).rejects.toThrow(/is the root/);
      await expect(f.executor.remove(f.server, '/')).rejects.toBeInstanceOf(UnsafePathError);
      await expect(f.executor.remove(f.server, `${home}/..`)).rejects.toBeInstanceOf(UnsafePathError);
    });

    it('changes owners recursively without following links out of the tree', async () => {
      await f.executor.mkdir(f.server, join(home, 'shop4', 'theme'));
      await f.executor.writeFile(f.server, join(home, 'shop4', 'theme', 'a.tpl'), 'x');
      await f.executor.chownRecursive(f.server, join(home, 'shop4'), 'nobody:nogroup');
      expect(statSync(join(home, 'shop4', 'theme', 'a.tpl')).uid).toBe(65534);
      expect(statSync(f.outside).uid).toBe(0);
    });

    it('mkdirs many paths at once, setting the mode of each listed directory only', async () => {
      const a = join(home, 'shop6');
      await f.executor.mkdirs(f.server, [join(a, 'b', 'c'), join(a, 'd'), join(a, 'd')], { mode: 0o750 });
      expect(statSync(join(a, 'b', 'c')).mode & 0o7777).toBe(0o750);
      expect(statSync(join(a, 'd')).mode & 0o7777).toBe(0o750);
      expect(statSync(join(a, 'b')).mode & 0o7777).toBe(0o755);
      await f.executor.mkdirs(f.server, [join(a, 'd')], { mode: 0o700, owner: 'nobody' });
      expect(statSync(join(a, 'd')).mode & 0o7777).toBe(0o700);
      expect(statSync(join(a, 'd')).uid).toBe(65534);
      await f.executor.mkdirs(f.server, []);
    });

    it('mkdirNew makes one new directory carrying its marker, and never adopts what is already there', async () => {
      const parent = join(home, 'news');
      await f.executor.mkdir(f.server, parent);
      await f.executor.mkdirNew(f.server, join(parent, 'a'), { mode: 0o750, owner: 'nobody:nogroup', marker: { name: '.created-by', content: 'install 7' } });
      expect(statSync(join(parent, 'a')).mode & 0o7777).toBe(0o750);
      expect(statSync(join(parent, 'a')).uid).toBe(65534);
      expect(readFileSync(join(parent, 'a', '.created-by'), 'utf8')).toBe('install 7');
      expect(statSync(join(parent, 'a', '.created-by')).uid).toBe(0);
      await f.executor.mkdirNew(f.server, join(parent, 'plain'));
      expect(readdirSync(join(parent, 'plain'))).toEqual([]);
      expect(statSync(join(parent, 'plain')).mode & 0o7777).toBe(0o755);

      mkdirSync(join(parent, 'dir'));
      writeFileSync(join(parent, 'file'), 'x');
      symlinkSync(f.outside, join(parent, 'link'));
      symlinkSync('/nowhere', join(parent, 'dangling'));
      const before = snapshotTree(parent);
      const outside = snapshotTree(f.outside);
      for (const name of ['a', 'dir', 'file', 'link', 'dangling']) {
        await expect(f.executor.mkdirNew(f.server, join(parent, name), { owner: 'nobody', marker: { name: 'm', content: 'x' } })).rejects.toBeInstanceOf(PathExistsError);
      }
      expect(snapshotTree(parent)).toEqual(before);
      expect(snapshotTree(f.outside)).toEqual(outside);
      await expect(f.executor.mkdirNew(f.server, join(parent, 'missing', 'x'))).rejects.toBeInstanceOf(CommandFailedError);
      await expect(f.executor.mkdirNew(f.server, join(parent, 'link', 'x'))).rejects.toThrow(/is a symlink/);
      await expect(f.executor.mkdirNew(f.server, home)).rejects.toBeInstanceOf(UnsafePathError);
      await expect(f.executor.mkdirNew(f.server, join(parent, 'b'), { marker: { name: '../m', content: 'x' } })).rejects.toBeInstanceOf(UnsafePathError);
      expect(existsSync(join(parent, 'b'))).toBe(false);
    });

    it('chown and chmod act on the paths themselves: a symlink is refused, and chown -R never follows one', async () => {
      const a = join(home, 'shop7');
      await f.executor.mkdirs(f.server, [join(a, 'w', 'sub')]);
      await f.executor.writeFile(f.server, join(a, 'w', 'sub', 'f'), 'x');
      symlinkSync(f.outside, join(a, 'w', 'out'));
      symlinkSync(f.outside, join(a, 'link'));
      const outside = [...snapshotTree(f.outside), `linked f 0:0 600 canary`].sort();
      await f.executor.chown(f.server, [join(a, 'w'), join(a, 'w', 'sub', 'f')], 'nobody');
      expect(statSync(join(a, 'w')).uid).toBe(65534);
      expect(statSync(join(a, 'w', 'sub')).uid).toBe(0);
      expect(statSync(join(a, 'w', 'sub', 'f')).uid).toBe(65534);
      await f.executor.chown(f.server, join(a, 'w'), ':nogroup', { recursive: true });
      expect(statSync(join(a, 'w', 'sub')).gid).toBe(65534);
      expect(lstatSync(join(a, 'w', 'out')).gid).toBe(65534);
      await f.executor.chmod(f.server, [join(a, 'w'), join(a, 'w', 'sub', 'f')], 0o770);
      expect(statSync(join(a, 'w')).mode & 0o7777).toBe(0o770);
      expect(statSync(join(a, 'w', 'sub', 'f')).mode & 0o7777).toBe(0o770);
      await expect(f.executor.chown(f.server, join(a, 'link'), 'nobody')).rejects.toThrow(/is a symlink/);
      await expect(f.executor.chown(f.server, join(a, 'link'), 'nobody', { recursive: true })).rejects.toBeInstanceOf(UnsafePathError);
      await expect(f.executor.chmod(f.server, join(a, 'link'), 0o777)).rejects.toBeInstanceOf(UnsafePathError);
      await expect(f.executor.chmod(f.server, join(a, 'w', 'out'), 0o777)).rejects.toBeInstanceOf(UnsafePathError);
      await expect(f.executor.chown(f.server, join(a, 'missing'), 'nobody')).rejects.toBeInstanceOf(CommandFailedError);
      await expect(f.executor.chown(f.server, join(a, 'w'), 'no-such-user-here')).rejects.toThrow(/no user no-such-user-here/);
      // A file hard-linked from elsewhere: its owner and mode are the other path's too.
      writeFileSync(join(f.outside, 'linked'), 'canary', { mode: 0o600 });
      linkSync(join(f.outside, 'linked'), join(a, 'w', 'hard'));
      await expect(f.executor.chown(f.server, join(a, 'w', 'hard'), 'nobody')).rejects.toThrow(/other hard links/);
      await expect(f.executor.chmod(f.server, join(a, 'w', 'hard'), 0o666)).rejects.toThrow(/other hard links/);
      rmSync(join(a, 'w', 'hard'));
      expect(snapshotTree(f.outside).sort()).toEqual(outside);
    });

    it('copies trees and files in place of what was there, links kept as links, owners and modes kept', async () => {
      const src = join(f.server.sharedCodeRoot, 'code_copy', 'theme');
      mkdirSync(join(src, 'img'), { recursive: true });
      writeFileSync(join(src, 'a.tpl'), 'tpl', { mode: 0o640 });
      writeFileSync(join(src, 'img', 'logo.png'), 'png');
      symlinkSync('a.tpl', join(src, 'b.tpl'));
      writeFileSync(join(f.server.sharedCodeRoot, 'code_copy', 'robots.txt'), 'robots', { mode: 0o600 });
      const a = join(home, 'shop8');
      await f.executor.mkdir(f.server, a);
      mkdirSync(join(a, 'theme'));
      writeFileSync(join(a, 'theme', 'stale'), 'old');
      await f.executor.copyTree(f.server, [
        { from: src, to: join(a, 'theme') },
        { from: src, to: join(a, 'deep', 'er', 'theme') },
        { from: join(f.server.sharedCodeRoot, 'code_copy', 'robots.txt'), to: join(a, 'robots.txt') },
      ]);
      for (const copy of [join(a, 'theme'), join(a, 'deep', 'er', 'theme')]) expect(snapshotTree(copy)).toEqual(snapshotTree(src));
      expect(readFileSync(join(a, 'robots.txt'), 'utf8')).toBe('robots');
      expect(statSync(join(a, 'robots.txt')).mode & 0o7777).toBe(0o600);
      expect(readdirSync(a).sort()).toEqual(['deep', 'robots.txt', 'theme']);
      await expect(f.executor.copyTree(f.server, [{ from: join(src, 'b.tpl'), to: join(a, 'x') }])).rejects.toThrow(/is a symlink/);
      await expect(f.executor.copyTree(f.server, [{ from: join(src, 'none'), to: join(a, 'x') }])).rejects.toBeInstanceOf(CommandFailedError);
      await expect(f.executor.copyTree(f.server, [{ from: '/etc', to: join(a, 'x') }])).rejects.toBeInstanceOf(UnsafePathError);
    });

    it('refuses every operation through a directory swapped for a symlink, to outside the roots or into another shop', async () => {
      const out = join(f.outside, 'swap');
      mkdirSync(join(out, 'sub'), { recursive: true });
      writeFileSync(join(out, 'keep'), 'canary');
      writeFileSync(join(out, 'sub', 'inner'), 'canary');
      const other = join(home, 'othershop');
      await f.executor.mkdirs(f.server, [join(other, 'sub')]);
      await f.executor.writeFile(f.server, join(other, 'keep'), 'another shop');
      await f.executor.writeFile(f.server, join(other, 'sub', 'inner'), 'another shop');
      const src = join(f.server.sharedCodeRoot, 'code_swap');
      mkdirSync(join(src, 'dir'), { recursive: true });
      writeFileSync(join(src, 'dir', 'f'), 'x');
      const tenant = join(home, 'tenant');
      for (const [label, dest] of [
        ['outside the roots', out],
        ['another shop', other],
      ] as const) {
        const before = snapshotTree(dest);
        // The tenant's directory swapped for a symlink to the victim, or a parent of it swapped for one to the victim's parent.
        for (const level of ['the directory', 'a parent'] as const) {
          rmSync(tenant, { recursive: true, force: true });
          if (level === 'the directory') {
            mkdirSync(tenant);
            symlinkSync(dest, join(tenant, 'w'));
          } else symlinkSync(dirname(dest), tenant);
          const via = level === 'the directory' ? join(tenant, 'w') : join(tenant, basename(dest));
          const attempts: Record<string, () => Promise<unknown>> = {
            writeFile: () => f.executor.writeFile(f.server, join(via, 'keep'), 'owned'),
            'writeFile (new)': () => f.executor.writeFile(f.server, join(via, 'new'), 'owned', { owner: 'nobody' }),
            readFile: () => f.executor.readFile(f.server, join(via, 'keep')),
            exists: () => f.executor.exists(f.server, join(via, 'keep')),
            mkdir: () => f.executor.mkdir(f.server, join(via, 'made')),
            mkdirs: () => f.executor.mkdirs(f.server, [join(via, 'sub', 'made'), join(via, 'made2')], { mode: 0o777 }),
            mkdirNew: () => f.executor.mkdirNew(f.server, join(via, 'fresh'), { owner: 'nobody', marker: { name: 'm', content: 'x' } }),
            chown: () => f.executor.chown(f.server, [join(via, 'keep')], 'nobody'),
            'chown (the link)': () => f.executor.chown(f.server, via, 'nobody'),
            'chown -R': () => f.executor.chown(f.server, [join(via, 'sub')], 'nobody', { recursive: true }),
            chownRecursive: () => f.executor.chownRecursive(f.server, via, 'nobody'),
            chmod: () => f.executor.chmod(f.server, [join(via, 'keep')], 0o666),
            'chmod (the link)': () => f.executor.chmod(f.server, via, 0o777),
            remove: () => f.executor.remove(f.server, join(via, 'keep')),
            'remove (a tree)': () => f.executor.remove(f.server, join(via, 'sub', 'inner')),
            symlink: () => f.executor.symlink(f.server, join(f.server.sharedCodeRoot, 'x'), join(via, 'keep')),
            symlinkMany: () => f.executor.symlinkMany(f.server, [{ target: join(f.server.sharedCodeRoot, 'x'), path: join(via, 'l') }]),
            copyTree: () => f.executor.copyTree(f.server, [{ from: join(src, 'dir'), to: join(via, 'sub') }]),
            'copyTree (a file)': () => f.executor.copyTree(f.server, [{ from: join(src, 'dir', 'f'), to: join(via, 'keep') }]),
            'copyTree (from)': () => f.executor.copyTree(f.server, [{ from: join(via, 'keep'), to: join(home, 'stolen') }]),
          };
          const outcomes: Record<string, string> = {};
          for (const [name, attempt] of Object.entries(attempts)) {
            outcomes[name] = await Promise.resolve()
              .then(attempt)
              .then(
              () => 'done',
              (error: unknown) => (error instanceof UnsafePathError && /is a symlink/.test(error.message) ? 'refused' : String(error)),
            );
          }
          expect({ swapped: `${level}, to ${label}`, outcomes }).toEqual({
            swapped: `${level}, to ${label}`,
            outcomes: Object.fromEntries(Object.keys(attempts).map((name) => [name, 'refused'])),
          });
          expect(snapshotTree(dest)).toEqual(before);
          expect(existsSync(join(home, 'stolen'))).toBe(false);
        }
      }
    });

    it('never acts outside through a directory a tenant flips between a real one and a symlink while the engine works in it', async () => {
      const out = join(f.outside, 'race');
      mkdirSync(join(out, 'sub'), { recursive: true });
      writeFileSync(join(out, 'victim'), 'canary', { mode: 0o644 });
      writeFileSync(join(out, 'sub', 'inner'), 'canary', { mode: 0o644 });
      const before = snapshotTree(out);
      const tenant = join(home, 'racer');
      const src = join(f.server.sharedCodeRoot, 'code_race');
      mkdirSync(join(src, 'dir'), { recursive: true });
      writeFileSync(join(src, 'dir', 'f'), 'x');
      await f.executor.mkdirs(f.server, [join(tenant, 'w', 'sub')]);
      symlinkSync(out, join(tenant, 'w.alt'));
      const w = join(tenant, 'w');
      const durationMs = 4_000;
      const flipper = spawn('perl', ['-e', FLIPPER, tenant, String(durationMs), String(RENAMEAT2 ?? 0)], { stdio: ['ignore', 'pipe', 'inherit'] });
      let flipped = '';
      flipper.stdout.on('data', (c: Buffer) => (flipped += c.toString()));
      const flipperDone = new Promise<number | null>((resolve) => flipper.once('close', resolve));
      const operations: (() => Promise<unknown>)[] = [
        () => f.executor.writeFile(f.server, join(w, 'victim'), 'owned'),
        () => f.executor.chown(f.server, [join(w, 'victim')], 'nobody'),
        () => f.executor.chown(f.server, join(w, 'sub'), 'nobody', { recursive: true }),
        () => f.executor.chmod(f.server, [join(w, 'victim'), join(w, 'sub')], 0o777),
        () => f.executor.remove(f.server, join(w, 'sub', 'inner')),
        () => f.executor.remove(f.server, join(w, 'victim')),
        () => f.executor.mkdirs(f.server, [join(w, 'sub', 'made')], { mode: 0o777 }),
        () => f.executor.symlinkMany(f.server, [{ target: join(f.server.sharedCodeRoot, 'x'), path: join(w, 'sub', 'l') }]),
        () => f.executor.copyTree(f.server, [{ from: join(src, 'dir'), to: join(w, 'sub', 'copy') }]),
        () => f.executor.mkdirNew(f.server, join(w, `new-${Math.random().toString(36).slice(2)}`), { owner: 'nobody' }),
        () => f.executor.chownRecursive(f.server, join(w, 'sub'), 'nobody'),
      ];
      const counts = { done: 0, refused: 0, failed: 0 };
      const started = Date.now();
      // Four at a time, each one operation after the other, until the flipper stops.
      await Promise.all(
        [0, 1, 2, 3].map(async (lane) => {
          for (let i = lane; Date.now() - started < durationMs - 200; i += 4) {
            const outcome = await Promise.resolve()
              .then(operations[i % operations.length])
              .then(
              () => 'done' as const,
              (error: unknown) => (error instanceof UnsafePathError ? ('refused' as const) : ('failed' as const)),
            );
            counts[outcome]++;
          }
        }),
      );
      expect(await flipperDone).toBe(0);
      expect(Number(flipped)).toBeGreaterThan(2_000);
      // The race was run both ways: operations met the real directory, and met the symlink.
      expect(counts.done).toBeGreaterThan(0);
      expect(counts.refused).toBeGreaterThan(0);
      expect(snapshotTree(out)).toEqual(before);
    });

    it('kills a command and what it started at once when its abort signal fires, given or from the scope', async () => {
      const dir = join(home, 'abort');
      mkdirSync(dir, { recursive: true });
      for (const via of ['option', 'scope'] as const) {
        const pidFile = join(dir, `${via}.pids`);
        const controller = new AbortController();
        const argv = ['sh', '-c', 'sleep 30 & echo $! > "$1.tmp"; echo $$ >> "$1.tmp"; mv "$1.tmp" "$1"; wait', 'sh', pidFile];
        const running =
          via === 'option' ? f.executor.run(f.server, argv, { signal: controller.signal }) : withAbortSignal(controller.signal, () => f.executor.run(f.server, argv));
        const settled = running.then(
          () => 'finished',
          (error: unknown) => error,
        );
        await waitFor('the command to start', () => existsSync(pidFile), 10_000);
        const pids = readFileSync(pidFile, 'utf8').trim().split('\n').map(Number);
        expect(pids.every(alive)).toBe(true);
        const aborted = Date.now();
        controller.abort(new Error('lease lost'));
        const error = await settled;
        expect(Date.now() - aborted).toBeLessThan(500);
        expect(error).toBeInstanceOf(CommandAbortedError);
        expect((error as CommandAbortedError).reason).toEqual(new Error('lease lost'));
        await waitFor(`${via}: the command and its child to be killed`, () => !pids.some(alive), 1_000);
      }
      // A signal that fired already: nothing starts.
      const marker = join(dir, 'never');
      await expect(f.executor.run(f.server, ['touch', marker], { signal: AbortSignal.abort() })).rejects.toBeInstanceOf(CommandAbortedError);
      await expect(withAbortSignal(AbortSignal.abort(), () => f.executor.writeFile(f.server, marker, 'x'))).rejects.toBeInstanceOf(CommandAbortedError);
      expect(existsSync(marker)).toBe(false);
      // The executor still works afterwards.
      expect(await f.executor.mustRun(f.server, ['echo', 'after'])).toBe('after\n');
    });

    it('kills a streaming command when the signal of its scope fires', async () => {
      const pidFile = join(home, 'abort', 'stream.pid');
      const controller = new AbortController();
      const command = await withAbortSignal(controller.signal, () => f.executor.stream(f.server, ['sh', '-c', 'echo $$ > "$1.tmp"; mv "$1.tmp" "$1"; exec sleep 30', 'sh', pidFile]));
      command.stdout.resume();
      await waitFor('the stream to start', () => existsSync(pidFile), 10_000);
      const pid = Number(readFileSync(pidFile, 'utf8'));
      expect(alive(pid)).toBe(true);
      controller.abort();
      const { exitCode } = await command.done;
      expect(exitCode).not.toBe(0);
      await waitFor('the streaming command to be killed', () => !alive(pid), 1_000);
    });
  });
}
