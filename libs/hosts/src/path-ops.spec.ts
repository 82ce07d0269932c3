import { spawnSync } from 'node:child_process';
import { encodeFields, pathFailure } from './path-ops.js';

describe('path operations', () => {
  it('encodes fields as Perl\'s (N/a*)* reads them, bytes unchanged', () => {
    const fields = ['/srv/home', 'shop/a b\tc', '', Buffer.from([0, 255, 10, 13])];
    const perl = spawnSync('perl', ['-e', 'binmode STDIN; local $/; print join(",", map { unpack("H*", $_) } unpack("(N/a*)*", <STDIN>))'], { input: encodeFields(fields) });
    expect(perl.stdout.toString()).toBe(fields.map((f) => Buffer.from(f).toString('hex')).join(','));
  });

  it('reads the last failure line the script printed, after what its tools printed', () => {
    expect(pathFailure('rm: cannot remove x\nerror\tcannot remove: rm exited 1\t/srv/home/a\tb\n')).toEqual({ kind: 'error', why: 'cannot remove: rm exited 1', path: '/srv/home/a\tb' });
    expect(pathFailure('unsafe\tis a symlink\t/srv/home/w\n')).toEqual({ kind: 'unsafe', why: 'is a symlink', path: '/srv/home/w' });
    expect(pathFailure('Global symbol "$x" requires explicit package name\n')).toBeNull();
  });
});
