import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { freePort } from './free-port.js';
import { portAnswers, startServerProcess, stopProcessTree, waitUntil, type ServerProcess } from './processes.js';

/** pebble (the ACME test CA) and pebble-challtestsrv as the DNS it (and the engine's pre-flight) resolve names with. */
export interface Pebble {
  directoryUrl: string;
  /** The CA listener's own certificate (ACME_CA_FILE). */
  listenerCert: string;
  /** DNS server `127.0.0.1:<port>` (ACME_PREFLIGHT_RESOLVER). */
  dns: string;
  /** Root and intermediate of this run (new at every start). */
  rootPem(): Promise<string>;
  /** Answers A queries for `host` with `ips` (instead of the default). */
  setA(host: string, ips: readonly string[]): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts pebble with its validation on `httpPort` (80: where the
 * dispatchers' nginx serves the challenge) and never without `-dnsserver`:
 * pebble-challtestsrv answers every A query with `defaultIp` (TESTBED-2.md).
 * Deterministic: no VA sleeps, no rejected nonces, no authz reuse.
 */
export async function startPebble(dir: string, options: { defaultIp: string; httpPort: number }): Promise<Pebble> {
  mkdirSync(dir, { recursive: true });
  const listenerCert = join(dir, 'listener.crt');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '30', '-subj', '/CN=pebble-listener', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', join(dir, 'listener.key'), '-out', listenerCert], { stdio: 'ignore' });
  const [wfe, management, tls, dnsPort, dnsManagement] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
  const processes: ServerProcess[] = [];
  const markers: string[] = [];
  const dns = `127.0.0.1:${dnsPort}`;
  const stop = async () => {
    for (const [i, p] of processes.entries()) await stopProcessTree(p.pid, markers[i]!);
  };
  try {
    const challtest = await startServerProcess(
      'pebble-challtestsrv',
      ['-defaultIPv4', options.defaultIp, '-defaultIPv6', '', '-dns01', dns, '-http01', '', '-https01', '', '-tlsalpn01', '', '-management', `127.0.0.1:${dnsManagement}`],
      join(dir, 'challtestsrv.log'),
    );
    processes.push(challtest);
    markers.push('pebble-challtestsrv');
    await waitUntil('challtestsrv', () => portAnswers(dnsManagement), { timeoutMs: 10_000, server: challtest });
    const config = join(dir, 'pebble.json');
    writeFileSync(config, JSON.stringify({ pebble: { listenAddress: `127.0.0.1:${wfe}`, managementListenAddress: `127.0.0.1:${management}`, certificate: listenerCert, privateKey: join(dir, 'listener.key'), httpPort: options.httpPort, tlsPort: tls, ocspResponderURL: '', externalAccountBindingRequired: false } }));
    const pebble = await startServerProcess('env', ['PEBBLE_VA_NOSLEEP=1', 'PEBBLE_WFE_NONCEREJECT=0', 'PEBBLE_AUTHZREUSE=0', 'pebble', '-config', config, '-dnsserver', dns], join(dir, 'pebble.log'));
    processes.push(pebble);
    markers.push(config);
    await waitUntil('pebble', () => portAnswers(wfe), { timeoutMs: 15_000, server: pebble });
  } catch (error) {
    await stop();
    throw error;
  }
  const agent = new Agent({ ca: readFileSync(listenerCert) });
  const get = (url: string) =>
    new Promise<string>((resolve, reject) => {
      request(url, { agent }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.once('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${url}: HTTP ${res.statusCode}`))));
      }).once('error', reject).end();
    });
  return {
    directoryUrl: `https://127.0.0.1:${wfe}/dir`,
    listenerCert,
    dns,
    rootPem: async () => (await get(`https://127.0.0.1:${management}/roots/0`)) + (await get(`https://127.0.0.1:${management}/intermediates/0`)),
    setA: (host, ips) =>
      new Promise<void>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port: dnsManagement, path: '/add-a', method: 'POST' }, (res) => {
          res.resume();
          res.once('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`add-a: HTTP ${res.statusCode}`))));
        });
        req.once('error', reject);
        req.end(JSON.stringify({ host: host.endsWith('.') ? host : `${host}.`, addresses: [...ips] }));
      }),
    stop,
  };
}
