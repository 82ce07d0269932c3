import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unifiedDiff } from './unified-diff.js';

/** GNU diff -u's hunks for the same texts (the tool people read these with). */
function gnuDiff(a: string, b: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'udiff-'));
  try {
    writeFileSync(join(dir, 'a'), a);
    writeFileSync(join(dir, 'b'), b);
    try {
      return execFileSync('diff', ['-u', join(dir, 'a'), join(dir, 'b')], { encoding: 'utf8' });
    } catch (error) {
      return (error as { stdout: string }).stdout;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
const hunks = (diff: string) => diff.split('\n').slice(2).join('\n');

describe('unifiedDiff', () => {
  const lines = (n: number, f = (i: number) => `line ${i}`) => Array.from({ length: n }, (_, i) => f(i + 1)).join('\n') + '\n';

  it('is empty for equal texts', () => {
    expect(unifiedDiff('a\nb\n', 'a\nb\n')).toBe('');
  });

  it('names the files and shows the changed lines with 3 lines of context', () => {
    const before = lines(10);
    const after = before.replace('line 5\n', 'line 5\nnew A\nnew B\n').replace('line 9\n', '');
    expect(unifiedDiff(before, after, { fromFile: 'a/x.conf', toFile: 'b/x.conf' })).toBe(
      ['--- a/x.conf', '+++ b/x.conf', '@@ -3,8 +3,9 @@', ' line 3', ' line 4', ' line 5', '+new A', '+new B', ' line 6', ' line 7', ' line 8', '-line 9', ' line 10', ''].join('\n'),
    );
  });

  it.each([
    ['far apart changes', lines(40), lines(40, (i) => (i === 3 || i === 30 ? `changed ${i}` : `line ${i}`))],
    ['insert at the start', lines(8), `first\n${lines(8)}`],
    ['delete at the end', lines(8), lines(6)],
    ['from nothing', '', lines(4)],
    ['to nothing', lines(4), ''],
    ['everything different', lines(5), lines(5, (i) => `other ${i}`)],
  ])('matches GNU diff -u hunks: %s', (_name, a, b) => {
    expect(hunks(unifiedDiff(a, b))).toBe(hunks(gnuDiff(a, b)));
  });
});
