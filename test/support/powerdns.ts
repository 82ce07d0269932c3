import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './free-port.js';
import { portAnswers, run, startFailure, startServerProcess, stopProcessTree, waitUntil } from './processes.js';

/**
 * A private PowerDNS authoritative server (Debian pdns-server with the
 * sqlite3 backend, TESTBED-2.md's recipe): DNS on udp/tcp `address:dnsPort`,
 * its HTTP API on `apiUrl` with `apiKey`, zones of its own in a SQLite file
 * under `dir`. Started by PID, stopped by PID (`stopPowerDns`).
 */
export interface TestPowerDns {
  dir: string;
  address: string;
  dnsPort: number;
  apiPort: number;
  /** What DNS_API_URL is set to (no trailing slash). */
  apiUrl: string;
  apiKey: string;
  serverId: string;
  pid: number;
  confDir: string;
}

/** The address the suites of libs/dns use by default; other suites may pass their own loopback address. */
export const POWERDNS_DEFAULT_ADDRESS = '127.0.115.1';

export async function startPowerDns(options: { address?: string } = {}): Promise<TestPowerDns> {
  const address = options.address ?? POWERDNS_DEFAULT_ADDRESS;
  const dir = mkdtempSync(join(tmpdir(), 'pdns-'));
  const database = join(dir, 'pdns.sqlite3');
  await run('sqlite3', ['-bail', database, '.read /usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql'], { timeoutMs: 30_000 });
  const dnsPort = await freePort();
  const apiPort = await freePort();
  const apiKey = `pdns-${randomBytes(12).toString('hex')}`;
  writeFileSync(
    join(dir, 'pdns.conf'),
    [
      '# Written by test/support/powerdns.ts for one test run.',
      'launch=gsqlite3',
      `gsqlite3-database=${database}`,
      `local-address=${address}`,
      `local-port=${dnsPort}`,
      `socket-dir=${dir}`,
      'daemon=no',
      'guardian=no',
      'disable-syslog=yes',
      // Empty: otherwise pdns sends a secpoll DNS query off this machine at start.
      'security-poll-suffix=',
      'api=yes',
      `api-key=${apiKey}`,
      `webserver-address=${address}`,
      `webserver-port=${apiPort}`,
      'webserver-allow-from=127.0.0.0/8',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const logPath = join(dir, 'pdns.log');
  const server = await startServerProcess('/usr/sbin/pdns_server', [`--config-dir=${dir}`], logPath);
  const pdns: TestPowerDns = { dir, address, dnsPort, apiPort, apiUrl: `http://${address}:${apiPort}`, apiKey, serverId: 'localhost', pid: server.pid, confDir: dir };
  try {
    await waitUntil('the PowerDNS API', async () => (await pdnsApi(pdns, 'GET', '/zones')).status === 200, { timeoutMs: 15_000, server });
    await waitUntil('PowerDNS on TCP', () => portAnswers(dnsPort, address), { timeoutMs: 15_000, server });
    return pdns;
  } catch (error) {
    await stopProcessTree(server.pid, `--config-dir=${dir}`);
    throw startFailure('pdns_server', error, logPath);
  }
}

/** Stops the server by its PID and removes its directory. */
export async function stopPowerDns(pdns: TestPowerDns): Promise<void> {
  await stopProcessTree(pdns.pid, `--config-dir=${pdns.confDir}`);
  rmSync(pdns.dir, { recursive: true, force: true });
}

/** One call to the server's API as the tests make it (outside the code under test). */
export async function pdnsApi(pdns: TestPowerDns, method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${pdns.apiUrl}/api/v1/servers/${pdns.serverId}${path}`, {
    method,
    headers: { 'X-API-Key': pdns.apiKey, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    /* not JSON */
  }
  return { status: res.status, body: parsed };
}

/** Creates a Native zone (no trailing dot needed) served at once. */
export async function createZone(pdns: TestPowerDns, zone: string): Promise<void> {
  const name = zone.endsWith('.') ? zone : `${zone}.`;
  const res = await pdnsApi(pdns, 'POST', '/zones', { name, kind: 'Native', nameservers: [`ns1.${name}`] });
  if (res.status !== 201) throw new Error(`creating zone ${name}: ${res.status} ${JSON.stringify(res.body)}`);
}

/** Sets an RRset directly (e.g. an MX or TXT the code under test must leave alone). */
export async function setRecords(pdns: TestPowerDns, zone: string, name: string, type: string, contents: string[], ttl = 60): Promise<void> {
  const z = zone.endsWith('.') ? zone : `${zone}.`;
  const n = name.endsWith('.') ? name : `${name}.`;
  const res = await pdnsApi(pdns, 'PATCH', `/zones/${z}`, {
    rrsets: [{ name: n, type, ttl, changetype: 'REPLACE', records: contents.map((content) => ({ content, disabled: false })) }],
  });
  if (res.status !== 204) throw new Error(`setting ${type} ${n}: ${res.status} ${JSON.stringify(res.body)}`);
}

/** What `dig +short @address -p port name type` answers, sorted (the real DNS protocol, not the API). */
export async function dig(pdns: TestPowerDns, name: string, type = 'A'): Promise<string[]> {
  const out = await run('dig', ['+short', '+time=2', '+tries=2', `@${pdns.address}`, '-p', String(pdns.dnsPort), name, type], { timeoutMs: 15_000 });
  return out
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .sort();
}

/** The env the engine/CLI need to use this server (DNS_*). */
export function powerDnsEnv(pdns: TestPowerDns, ttl = 60): Record<string, string> {
  return { DNS_API_URL: pdns.apiUrl, DNS_API_KEY: pdns.apiKey, DNS_SERVER_ID: pdns.serverId, DNS_TTL: String(ttl) };
}
