import { lstatSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { CommandFailedError, HostTimeoutError, UnsafePathError, type HostExecutor, type ServerRoots } from '@app/hosts';

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
      await expect(f.executor.writeFile(f.server, join(home, 'sneaky', 'owned'), 'x')).rejects.toThrow(/resolves through a symlink/);
      await expect(f.executor.mkdir(f.server, join(home, 'sneaky', 'dir'))).rejects.toThrow(/resolves through a symlink/);
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
  });
}
