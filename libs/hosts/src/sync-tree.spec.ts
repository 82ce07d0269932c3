import { receivingCommand } from './sync-tree.js';

const dest = '/srv/shared_codes/group1/';
const asked = (...middle: string[]) => ['relay', 'rsync', '--server', ...middle, '.', dest];

describe('receivingCommand (what a source server may make the destination run)', () => {
  it('passes rsync --server with its own flags and the destination the engine chose', () => {
    expect(receivingCommand(asked('-logDtpre.iLsfxCIvu', '--delete'), dest)).toEqual(['rsync', '--server', '-logDtpre.iLsfxCIvu', '--delete', '.', dest]);
    expect(receivingCommand(asked('-logDtpre.iLsfxCIvu', '--delete', '--safe-links'), dest)).toEqual(['rsync', '--server', '-logDtpre.iLsfxCIvu', '--delete', '--safe-links', '.', dest]);
  });

  it.each([
    ['another program', ['relay', 'sh', '--server', '.', dest]],
    ['not a server', ['relay', 'rsync', '-e', '.', dest]],
    ['another destination', asked('-logDtpre.iLsfxCIvu').map((w) => (w === dest ? '/etc/' : w))],
    ['a sender', asked('--sender', '-logDtpre.iLsfxCIvu')],
    ['a remote shell option', asked('--rsh=sh')],
    ['a shell word', asked('-a;rm')],
    ['a path in the flags', asked('--log-file=/etc/passwd')],
    ['a command substitution', asked('$(touch /tmp/x)')],
    ['a newline', asked('-a\n--delete')],
    ['nothing', []],
  ])('refuses %s', (_what, header) => {
    expect(() => receivingCommand(header, dest)).toThrow(/refused the receiving command/);
  });
});
