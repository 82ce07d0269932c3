import { connect, type NetConnectOpts } from 'node:net';

/** Where a php-fpm pool listens: a unix socket path, or host and port. */
export type FastCgiTarget = { path: string } | { host: string; port: number; localAddress?: string };

export interface FastCgiAnswer {
  /** The response's header block as PHP sent it (CGI style, `Status:` when not 200). */
  head: string;
  body: string;
  /** What php-fpm wrote on the error stream (warnings, open_basedir refusals). */
  stderr: string;
}

/**
 * One FastCGI request (the responder role) straight to a php-fpm pool, as
 * nginx sends it: what code running in that pool does, without nginx's
 * rules in front (a script a tenant uploaded, run by a hole in its shop).
 */
export function fastcgi(target: FastCgiTarget, script: string, params: Record<string, string> = {}, timeoutMs = 15_000): Promise<FastCgiAnswer> {
  const record = (type: number, content: Buffer) => {
    const header = Buffer.alloc(8);
    header.writeUInt8(1, 0);
    header.writeUInt8(type, 1);
    header.writeUInt16BE(1, 2);
    header.writeUInt16BE(content.length, 4);
    return Buffer.concat([header, content]);
  };
  const length = (n: number) => (n < 128 ? Buffer.from([n]) : Buffer.from([((n >>> 24) & 0x7f) | 0x80, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]));
  const pair = (name: string, value: string) => Buffer.concat([length(Buffer.byteLength(name)), length(Buffer.byteLength(value)), Buffer.from(name), Buffer.from(value)]);
  const all = { SCRIPT_FILENAME: script, REQUEST_METHOD: 'GET', SCRIPT_NAME: '/t.php', REQUEST_URI: '/t.php', SERVER_PROTOCOL: 'HTTP/1.1', GATEWAY_INTERFACE: 'CGI/1.1', ...params };
  const body = Buffer.concat(Object.entries(all).map(([k, v]) => pair(k, v)));
  const options: NetConnectOpts = 'path' in target ? { path: target.path } : { host: target.host, port: target.port, ...(target.localAddress ? { localAddress: target.localAddress } : {}) };
  return new Promise((resolve, reject) => {
    const socket = connect(options, () => socket.end(Buffer.concat([record(1, Buffer.from([0, 1, 0, 0, 0, 0, 0, 0])), record(4, body), record(4, Buffer.alloc(0)), record(5, Buffer.alloc(0))])));
    const chunks: Buffer[] = [];
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`no FastCGI answer within ${timeoutMs} ms`)));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      const data = Buffer.concat(chunks);
      let out = '';
      let stderr = '';
      for (let o = 0; o + 8 <= data.length; o += 8 + data.readUInt16BE(o + 4) + data[o + 6]!) {
        const content = data.subarray(o + 8, o + 8 + data.readUInt16BE(o + 4)).toString();
        if (data[o + 1] === 6) out += content;
        if (data[o + 1] === 7) stderr += content;
      }
      const split = out.indexOf('\r\n\r\n');
      resolve({ head: split < 0 ? out : out.slice(0, split), body: split < 0 ? '' : out.slice(split + 4), stderr });
    });
  });
}
