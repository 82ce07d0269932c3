import { Duplex, PassThrough } from 'node:stream';
import type { ClientChannel } from 'ssh2';
import { Runner } from './ssh-executor.adapter.js';

/** A reply frame as RUNNER_SCRIPT writes it: the frame's length, then each value with its own. */
function replyFrame(id: number, status: string, exitCode: number, stdout: string): Buffer {
  const values = [String(id), status, String(exitCode), stdout, ''].map((v) => {
    const b = Buffer.from(v);
    const n = Buffer.alloc(4);
    n.writeUInt32BE(b.length);
    return Buffer.concat([n, b]);
  });
  const body = Buffer.concat(values);
  const n = Buffer.alloc(4);
  n.writeUInt32BE(body.length);
  return Buffer.concat([n, body]);
}

/** An SSH channel whose far end answers each request with `answer` (called as the request is written). */
function fakeChannel(answer: (channel: Duplex) => void): ClientChannel {
  const channel = new Duplex({
    read() {},
    write(_chunk, _encoding, callback) {
      callback();
      answer(channel);
    },
  });
  Object.assign(channel, { stderr: new PassThrough(), close: () => channel.destroy() });
  return channel as unknown as ClientChannel;
}

const collect = (stream: NodeJS.ReadableStream, ms: number) =>
  Promise.race([
    new Promise<string>((resolve) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => resolve(Buffer.concat(chunks).toString()));
    }),
    new Promise<string>((_, reject) => setTimeout(() => reject(new Error(`the command's output did not end within ${ms} ms`)), ms)),
  ]);

describe('a runner becoming a stream', () => {
  it('hands over output and its end that arrived with the acknowledgement, at once', async () => {
    // The acknowledgement, the whole output and the end in one go, before `become` continues.
    const output = 'CREATE TABLE t (id INT);\nINSERT INTO t VALUES (1);\n';
    const channel = fakeChannel((c) => {
      c.push(Buffer.concat([replyFrame(1, 'became', 0, '4242'), Buffer.from(output)]));
      c.push(null);
    });
    const runner = new Runner('h', channel, () => 1);
    const { stdout, group } = await runner.become(['gzip', '-dc', '/x'], 1_000);
    expect(group).toBe(4242);
    expect(await collect(stdout, 1_000)).toBe(output);
  });

  it("never reads the command's output as a reply, whatever its first bytes look like", async () => {
    // Output that starts like a frame header (a small length) and arrives in its own chunk before `become` continues.
    const output = Buffer.concat([Buffer.from([0, 0, 0, 3]), Buffer.from('abc'), Buffer.from(' and the rest')]);
    const channel = fakeChannel((c) => {
      c.push(replyFrame(1, 'became', 0, '4242'));
      c.push(output);
      setTimeout(() => c.push(null), 20);
    });
    const runner = new Runner('h', channel, () => 1);
    const { stdout } = await runner.become(['cat'], 1_000);
    expect(Buffer.from(await collect(stdout, 1_000), 'latin1')).toEqual(output);
  });
});
