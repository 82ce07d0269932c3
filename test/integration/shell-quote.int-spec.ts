import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { commandLine } from '@app/hosts';
import { HOSTILE_ARGUMENTS } from '../support/executor-contract.js';
import { runSsh } from '../support/sshd.js';
import { readTestbed } from '../support/testbed.js';

/** The quoting function against real shells: a local sh, and the remote shell of the testbed's sshd. */
describe('commandLine through real shells', () => {
  const dir = mkdtempSync(join(tmpdir(), 'quote-'));
  const canary = join(dir, 'canary');
  const args = HOSTILE_ARGUMENTS.map((a) => a.replace('CANARY', canary));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('sh -c gets each hostile argument back as one word, and the canary is never created', async () => {
    for (const arg of args) {
      const { stdout } = await promisify(execFile)('sh', ['-c', commandLine(['printf', '%s', arg])]);
      expect(stdout).toBe(arg);
    }
    expect(existsSync(canary)).toBe(false);
  });

  it('the remote shell of a real sshd does too', async () => {
    const { sshd } = readTestbed();
    for (const arg of args) {
      // ssh joins its command words with spaces for the remote shell: only one, quoted, word is passed.
      expect(await runSsh(sshd, [commandLine(['printf', '%s', arg])])).toBe(arg);
    }
    expect(existsSync(canary)).toBe(false);
  });
});
