import { PassThrough } from 'node:stream';
import type { StreamingCommand } from '@app/hosts';
import { relay } from './tenant-dumps.js';

/** A command whose end is in the test's hands; `endsWhenKilled`: kill() ends it as a real one does (137). */
function command(endsWhenKilled: boolean): StreamingCommand & { stdout: PassThrough; end: (exitCode: number) => void; killed: boolean } {
  let end!: (r: { exitCode: number; stderr: string }) => void;
  const done = new Promise<{ exitCode: number; stderr: string }>((resolve) => (end = resolve));
  const c = {
    stdin: new PassThrough(),
    stdout: new PassThrough() as PassThrough,
    done,
    killed: false,
    end: (exitCode: number) => end({ exitCode, stderr: '' }),
    kill: () => {
      c.killed = true;
      if (endsWhenKilled) end({ exitCode: 137, stderr: '' });
    },
  };
  return c;
}

const host = (hostname: string) => ({ hostname });
const quick = { timeoutMs: 5_000, stallMs: 200, killGraceMs: 300 };

describe('relay (dump and load between servers)', () => {
  it('pipes the sender into the receiver; both exiting 0 is success', async () => {
    const sender = command(true);
    const receiver = command(true);
    const got: Buffer[] = [];
    receiver.stdin.on('data', (c: Buffer) => got.push(c));
    const running = relay(sender, host('a'), async () => receiver, host('b'), 'load of x', quick);
    await new Promise((r) => setTimeout(r, 20));
    sender.stdout.end('dump\n');
    sender.end(0);
    receiver.end(0);
    await expect(running).resolves.toBeUndefined();
    expect(Buffer.concat(got).toString()).toBe('dump\n');
  });

  it('fails a stalled relay once its killed commands end', async () => {
    const sender = command(true);
    const receiver = command(true);
    await expect(relay(sender, host('a'), async () => receiver, host('b'), 'load of x', quick)).rejects.toThrow(/load of x from a to b stalled: no data moved for 0.2 s/);
    expect([sender.killed, receiver.killed]).toEqual([true, true]);
  });

  it('fails, instead of waiting forever, when killed commands never end', async () => {
    const started = Date.now();
    await expect(relay(command(false), host('a'), async () => command(false), host('b'), 'load of x', quick)).rejects.toThrow(/stalled: no data moved for 0.2 s, and its commands had not ended 0.3 s after being killed/);
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('fails when the receiver never starts, and kills it if it starts later', async () => {
    const sender = command(false);
    const late = command(true);
    let started!: (c: StreamingCommand) => void;
    const start = () => new Promise<StreamingCommand>((resolve) => (started = resolve));
    await expect(relay(sender, host('a'), start, host('b'), 'load of x', quick)).rejects.toThrow(/had not ended/);
    started(late);
    await new Promise((r) => setImmediate(r));
    expect(late.killed).toBe(true);
  });
});
