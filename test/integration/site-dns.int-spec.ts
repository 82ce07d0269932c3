import 'reflect-metadata';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Module, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { DataSource } from 'typeorm';
import { CatalogModule, Install, InstallSiteIp, Server, ServerIp, SharedCodeGroup, type NewServer } from '@app/catalog';
import { DomainError, redactSecrets, withSecretScope } from '@app/common';
import { ConfigModule } from '@app/config';
import { DnsModule, PowerDnsClient, PowerDnsSiteDns, SiteDns, SiteRecordsRepository, UnmanagedSiteDns } from '@app/dns';
import { PrepareService, type CreateInstallDto } from '@app/installs';
import { createTestCatalog, testEngineConfig, type TestCatalog } from '../support/catalog.js';
import { freePort } from '../support/free-port.js';
import { createZone, dig, pdnsApi, powerDnsEnv, setRecords, startPowerDns, stopPowerDns, type TestPowerDns } from '../support/powerdns.js';
import { testServer } from '../support/server-roots.js';

/**
 * libs/dns against a real PowerDNS (sqlite3 backend, its HTTP API) and the
 * MariaDB testbed catalog: installs prepared as the order hook does (IPs
 * allocated from the pools), their names published, answered by `dig`.
 */
describe('site DNS (PowerDNS HTTP API, MariaDB catalog)', () => {
  let pdns: TestPowerDns;
  let catalog: TestCatalog;
  let app: INestApplicationContext;
  let bare: INestApplicationContext;
  let ds: DataSource;
  let dns: SiteDns;
  const scratch = mkdtempSync(join(tmpdir(), 'site-dns-'));
  const ids: Record<string, number> = {};
  const lines: string[] = [];
  const io = { log: (line: string) => lines.push(line) };

  const context = async (env: Record<string, string>): Promise<INestApplicationContext> => {
    @Module({
      imports: [ConfigModule.forRoot(testEngineConfig(catalog.url, env)), CatalogModule.forRoot({ runMigrations: true }), DnsModule],
      providers: [PrepareService],
    })
    class DnsTestModule {}
    return NestFactory.createApplicationContext(DnsTestModule, { logger: false });
  };
  const server = (hostname: string, roles: NewServer['roles']) => ds.getRepository(Server).save(testServer(join(scratch, hostname), hostname, roles, null));
  const addIp = (serverId: number, ip: string, kind: ServerIp['kind']) => ds.getRepository(ServerIp).save({ serverId, ip, kind, failoverGroup: null, activeServerId: null });
  const order = (ref: string, license: 'free' | 'paid', sites: { hostname: string; secureHostname?: string }[]) =>
    app.get(PrepareService).prepare({ orderRef: ref, customerEmail: 'owner@example.com', license, sites } as CreateInstallDto);
  /** The addresses the catalog says serve the install (what DNS must answer). */
  const catalogIps = async (installId: number) =>
    (await ds.getRepository(InstallSiteIp).createQueryBuilder('h').innerJoin('install_sites', 's', 's.id = h.install_site_id').innerJoinAndSelect('h.serverIp', 'ip').where('s.install_id = :installId', { installId }).getMany()).map((h) => h.serverIp!.ip);
  const zoneDump = async (zone: string) => JSON.stringify((await pdnsApi(pdns, 'GET', `/zones/${zone}.`)).body);
  const caught = async (promise: Promise<unknown>): Promise<DomainError> => {
    try {
      await promise;
    } catch (error) {
      return error as DomainError;
    }
    throw new Error('expected an error');
  };

  beforeAll(async () => {
    [pdns, catalog] = await Promise.all([startPowerDns(), createTestCatalog('mariadb', 'site_dns')]);
    await createZone(pdns, 'dnstest.example');
    // The longest suffix wins: names under sub.dnstest.example are in that zone.
    await createZone(pdns, 'sub.dnstest.example');
    app = await context(powerDnsEnv(pdns));
    bare = await context({});
    ds = app.get(DataSource);
    dns = app.get(SiteDns);
    ids.d1 = (await server('d1.example.net', ['dispatcher', 'handler'])).id;
    ids.d2 = (await server('d2.example.net', ['dispatcher', 'handler'])).id;
    await server('db.example.net', ['database']);
    await addIp(ids.d1, '10.115.1.1', 'dedicated');
    await addIp(ids.d1, '10.115.9.9', 'shared');
    // d2's pool is IPv6: the paid install's sites get an AAAA there.
    await addIp(ids.d2, '2001:db8:115::2', 'dedicated');
    await addIp(ids.d2, '10.115.2.9', 'shared');
    const group = (name: string, tier: 'free' | 'paid') =>
      ds.getRepository(SharedCodeGroup).save({ name, tier, repoUrl: '/srv/repo', revision: 'abc', path: `/srv/shared_codes/${name}`, masterServerId: ids.d1!, installLimit: 10, installCount: 0, pinned: false, manifest: null, state: 'ready' });
    await group('paid-1', 'paid');
    await group('free-1', 'free');
  });
  afterAll(async () => {
    await app?.close();
    await bare?.close();
    await catalog?.drop();
    if (pdns) await stopPowerDns(pdns);
    rmSync(scratch, { recursive: true, force: true });
  });
  beforeEach(() => {
    lines.length = 0;
  });

  it('provides PowerDNS when DNS_API_URL is set, else every name unmanaged', () => {
    expect(dns).toBeInstanceOf(PowerDnsSiteDns);
    expect(bare.get(SiteDns)).toBeInstanceOf(UnmanagedSiteDns);
  });

  it('publishes a free install at its shared IP: dig answers exactly that; an MX and a TXT at the name stay; runs again unchanged', async () => {
    const { install } = await order('DNS-FREE', 'free', [{ hostname: 'free.dnstest.example', secureHostname: 'secure-free.dnstest.example' }]);
    const ips = await catalogIps(install.id);
    expect(ips.length).toBeGreaterThan(0);
    await setRecords(pdns, 'dnstest.example', 'free.dnstest.example', 'MX', ['10 mail.dnstest.example.']);
    await setRecords(pdns, 'dnstest.example', 'free.dnstest.example', 'TXT', ['"v=spf1 -all"']);
    // A stale address from before is replaced, not added to.
    await setRecords(pdns, 'dnstest.example', 'free.dnstest.example', 'A', ['10.115.0.66']);

    const changes = await dns.publish(install.id, io);
    expect(changes).toEqual([
      { name: 'free.dnstest.example', zone: 'dnstest.example', managed: true, before: [{ type: 'A', content: '10.115.0.66' }], after: ips.map((content) => ({ type: 'A', content })) },
      { name: 'secure-free.dnstest.example', zone: 'dnstest.example', managed: true, before: [], after: ips.map((content) => ({ type: 'A', content })) },
    ]);
    expect(ips).toEqual(['10.115.9.9']);
    expect(await dig(pdns, 'free.dnstest.example', 'A')).toEqual(['10.115.9.9']);
    expect(await dig(pdns, 'secure-free.dnstest.example', 'A')).toEqual(['10.115.9.9']);
    expect(await dig(pdns, 'free.dnstest.example', 'MX')).toEqual(['10 mail.dnstest.example.']);
    expect(await dig(pdns, 'free.dnstest.example', 'TXT')).toEqual(['"v=spf1 -all"']);
    expect(lines.join('\n')).toContain('dns: free.dnstest.example (zone dnstest.example): A 10.115.9.9 (was A 10.115.0.66)');

    const zoneBefore = await zoneDump('dnstest.example');
    const again = await dns.publish(install.id, io);
    expect(again.every((c) => JSON.stringify(c.before) === JSON.stringify(c.after))).toBe(true);
    // Nothing was sent: the serial (bumped by every PATCH) is the same.
    expect(await zoneDump('dnstest.example')).toBe(zoneBefore);
  });

  it('publishes a paid install with one IP per dispatcher (A on d1, AAAA on d2), in the longest zone', async () => {
    const { install } = await order('DNS-PAID', 'paid', [{ hostname: 'paid.sub.dnstest.example' }]);
    const ips = (await catalogIps(install.id)).sort();
    expect(ips).toEqual(['10.115.1.1', '2001:db8:115::2']);
    const changes = await dns.publish(install.id, io);
    expect(changes).toEqual([
      { name: 'paid.sub.dnstest.example', zone: 'sub.dnstest.example', managed: true, before: [], after: [{ type: 'A', content: '10.115.1.1' }, { type: 'AAAA', content: '2001:db8:115::2' }] },
    ]);
    expect(await dig(pdns, 'paid.sub.dnstest.example', 'A')).toEqual(['10.115.1.1']);
    expect(await dig(pdns, 'paid.sub.dnstest.example', 'AAAA')).toEqual(['2001:db8:115::2']);
    expect(await dns.lookup('Paid.Sub.Dnstest.Example.')).toEqual([{ type: 'A', content: '10.115.1.1' }, { type: 'AAAA', content: '2001:db8:115::2' }]);
    // The parent zone holds nothing for it.
    expect(await zoneDump('dnstest.example')).not.toContain('paid.sub');
  });

  it('reports an unmanaged name with the records to set, and sends nothing for it', async () => {
    const { install } = await order('DNS-UNMANAGED', 'free', [{ hostname: 'www.customer-own.example' }]);
    const [ip] = await catalogIps(install.id);
    expect(['10.115.9.9', '10.115.2.9']).toContain(ip);
    const zonesBefore = JSON.stringify((await pdnsApi(pdns, 'GET', '/zones')).body);
    const changes = await dns.publish(install.id, io);
    expect(changes).toEqual([{ name: 'www.customer-own.example', zone: null, managed: false, before: [], after: [{ type: 'A', content: ip }] }]);
    expect(lines).toEqual([`dns: www.customer-own.example is not in a zone we manage: the customer must set A ${ip} at their DNS provider`]);
    expect(JSON.stringify((await pdnsApi(pdns, 'GET', '/zones')).body)).toBe(zonesBefore);
    expect(await dig(pdns, 'www.customer-own.example', 'A')).toEqual([]);
    expect(await dns.lookup('www.customer-own.example')).toBeNull();
    // Without PowerDNS configured, every name is reported that way.
    const unmanaged = await bare.get(SiteDns).publish(install.id, io);
    expect(unmanaged).toEqual(changes);
    const free = await ds.getRepository(Install).findOneByOrFail({ orderRef: 'DNS-FREE' });
    expect((await bare.get(SiteDns).planPublish(free.id)).map((c) => [c.name, c.managed, c.after])).toEqual([
      ['free.dnstest.example', false, [{ type: 'A', content: '10.115.9.9' }]],
      ['secure-free.dnstest.example', false, [{ type: 'A', content: '10.115.9.9' }]],
    ]);
  });

  it('plans publish and unpublish without changing anything', async () => {
    const { install } = await order('DNS-PLAN', 'free', [{ hostname: 'plan.dnstest.example' }]);
    const before = await zoneDump('dnstest.example');
    const plan = await dns.planPublish(install.id);
    expect(plan).toEqual([{ name: 'plan.dnstest.example', zone: 'dnstest.example', managed: true, before: [], after: [{ type: 'A', content: '10.115.9.9' }] }]);
    const unplan = await dns.planUnpublish(['free.dnstest.example', 'www.customer-own.example']);
    expect(unplan).toEqual([
      { name: 'free.dnstest.example', zone: 'dnstest.example', managed: true, before: [{ type: 'A', content: '10.115.9.9' }], after: [] },
      { name: 'www.customer-own.example', zone: null, managed: false, before: [], after: [] },
    ]);
    expect(await zoneDump('dnstest.example')).toBe(before);
    expect(await dig(pdns, 'plan.dnstest.example', 'A')).toEqual([]);
    expect(await dig(pdns, 'free.dnstest.example', 'A')).toEqual(['10.115.9.9']);
  });

  it('unpublishes only the A/AAAA of the names given: MX and TXT stay, other names stay; idempotent', async () => {
    const changes = await dns.unpublish(['free.dnstest.example', 'paid.sub.dnstest.example'], io);
    expect(changes.map((c) => [c.name, c.managed, c.after])).toEqual([
      ['free.dnstest.example', true, []],
      ['paid.sub.dnstest.example', true, []],
    ]);
    expect(await dig(pdns, 'free.dnstest.example', 'A')).toEqual([]);
    expect(await dig(pdns, 'paid.sub.dnstest.example', 'A')).toEqual([]);
    expect(await dig(pdns, 'paid.sub.dnstest.example', 'AAAA')).toEqual([]);
    expect(await dig(pdns, 'free.dnstest.example', 'MX')).toEqual(['10 mail.dnstest.example.']);
    expect(await dig(pdns, 'free.dnstest.example', 'TXT')).toEqual(['"v=spf1 -all"']);
    expect(await dig(pdns, 'secure-free.dnstest.example', 'A')).toEqual(['10.115.9.9']);
    const again = await dns.unpublish(['free.dnstest.example'], io);
    expect(again).toEqual([{ name: 'free.dnstest.example', zone: 'dnstest.example', managed: true, before: [], after: [] }]);
  });

  it('refuses a malformed name before any request, naming the problem', async () => {
    const error = await caught(dns.unpublish(['bad..dnstest.example']));
    expect(error).toMatchObject({ code: 'DNS_NAME_INVALID', status: 400 });
    expect(error.message).toContain('empty label');
    await expect(dns.planUnpublish(['shop.example/../zones'])).rejects.toMatchObject({ code: 'DNS_NAME_INVALID' });
    await expect(dns.lookup('x')).rejects.toMatchObject({ code: 'DNS_NAME_INVALID' });
  });

  it("passes PowerDNS's 422 on with its message (an A where a CNAME is)", async () => {
    const { install } = await order('DNS-CNAME', 'free', [{ hostname: 'alias.dnstest.example' }]);
    await setRecords(pdns, 'dnstest.example', 'alias.dnstest.example', 'CNAME', ['free.dnstest.example.']);
    const error = await caught(dns.publish(install.id, io));
    expect(error).toBeInstanceOf(DomainError);
    expect(error).toMatchObject({ code: 'DNS_CHANGE_REJECTED', status: 409 });
    expect(error.message).toMatch(/PowerDNS refused the change of zone dnstest\.example \(HTTP 422\): RRset alias\.dnstest\.example\. IN A: Conflicts with pre-existing RRset/);
    expect(await dig(pdns, 'alias.dnstest.example', 'CNAME')).toEqual(['free.dnstest.example.']);
  });

  it('a wrong API key: a clear error that never shows the key', async () => {
    const wrongKey = 'wrong-key-0123456789abcdef';
    const wrong = new PowerDnsSiteDns(new PowerDnsClient({ apiUrl: pdns.apiUrl, apiKey: wrongKey, serverId: 'localhost' }), app.get(SiteRecordsRepository), { ttl: 60 });
    const error = await caught(wrong.unpublish(['secure-free.dnstest.example']));
    expect(error).toMatchObject({ code: 'DNS_API_KEY_REJECTED', status: 502 });
    expect(error.message).toBe(`The PowerDNS API at ${pdns.apiUrl} refused the API key (HTTP 401): check DNS_API_KEY against its api-key setting`);
    const shown = JSON.stringify({ message: error.message, details: error.details, stack: error.stack });
    expect(shown).not.toContain(wrongKey);
    expect(shown).not.toContain(pdns.apiKey);
    expect(await dig(pdns, 'secure-free.dnstest.example', 'A')).toEqual(['10.115.9.9']);
  });

  it("registers the key as a secret of the running job: the job's output masks it", async () => {
    const masked = await withSecretScope(async () => {
      await dns.lookup('free.dnstest.example');
      return redactSecrets(`a step printed ${pdns.apiKey} by mistake`);
    });
    expect(masked).toBe('a step printed [redacted] by mistake');
  });

  it('the API down: a clear error after the retries, the key not in it', async () => {
    const port = await freePort();
    const apiUrl = `http://127.0.115.1:${port}`;
    const down = new PowerDnsSiteDns(new PowerDnsClient({ apiUrl, apiKey: pdns.apiKey, serverId: 'localhost' }, { retryDelayMs: 20 }), app.get(SiteRecordsRepository), { ttl: 60 });
    const started = Date.now();
    const error = await caught(down.planUnpublish(['free.dnstest.example']));
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(error).toMatchObject({ code: 'DNS_API_UNREACHABLE', status: 502 });
    expect(error.message).toBe(`The PowerDNS API at ${apiUrl} did not answer (ECONNREFUSED) after 3 attempts: is pdns_server running with api=yes, and DNS_API_URL right? No DNS record was changed by this call`);
    expect(JSON.stringify({ message: error.message, details: error.details })).not.toContain(pdns.apiKey);
  });

  /**
   * An HTTP server in front of the real API that answers 503 to the first
   * `failures` requests (or never answers), then passes requests on: what a
   * restarting PowerDNS or a proxy in between looks like to the client.
   */
  const flakyApi = async (failures: number | 'hang'): Promise<{ url: string; requests: () => number; close: () => Promise<void> }> => {
    let seen = 0;
    const server: HttpServer = createServer((req, res) => {
      seen++;
      if (failures === 'hang') return;
      if (seen <= failures) {
        res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'backend restarting' }));
        return;
      }
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        void fetch(`${pdns.apiUrl}${req.url}`, { method: req.method, headers: { 'x-api-key': String(req.headers['x-api-key'] ?? ''), 'content-type': 'application/json' }, body: chunks.length ? Buffer.concat(chunks) : undefined }).then(async (upstream) => {
          res.writeHead(upstream.status, { 'content-type': 'application/json' }).end(await upstream.text());
        });
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.115.1', resolve));
    return {
      url: `http://127.0.115.1:${(server.address() as AddressInfo).port}`,
      requests: () => seen,
      close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
    };
  };

  it('retries 5xx answers: two 503s then success publishes; 503 every time is a clear error', async () => {
    const { install } = await order('DNS-RETRY', 'free', [{ hostname: 'retry.dnstest.example' }]);
    const flaky = await flakyApi(2);
    try {
      const retrying = new PowerDnsSiteDns(new PowerDnsClient({ apiUrl: flaky.url, apiKey: pdns.apiKey, serverId: 'localhost' }, { retryDelayMs: 20 }), app.get(SiteRecordsRepository), { ttl: 60 });
      const [change] = await retrying.publish(install.id, io);
      expect(change).toMatchObject({ name: 'retry.dnstest.example', managed: true });
      expect(await dig(pdns, 'retry.dnstest.example', 'A')).toEqual(change!.after.map((r) => r.content));
      // 2 refused + the zone list + the name's RRsets + the PATCH.
      expect(flaky.requests()).toBe(5);
    } finally {
      await flaky.close();
    }
    const down = await flakyApi(1000);
    try {
      const failing = new PowerDnsSiteDns(new PowerDnsClient({ apiUrl: down.url, apiKey: pdns.apiKey, serverId: 'localhost' }, { retryDelayMs: 20 }), app.get(SiteRecordsRepository), { ttl: 60 });
      const error = await caught(failing.unpublish(['retry.dnstest.example']));
      expect(error).toMatchObject({ code: 'DNS_API_UNREACHABLE', status: 502 });
      expect(error.message).toContain('did not answer (HTTP 503: backend restarting) after 3 attempts');
      expect(down.requests()).toBe(3);
      expect(await dig(pdns, 'retry.dnstest.example', 'A')).not.toEqual([]);
    } finally {
      await down.close();
    }
  });

  it('an API that never answers: timed out per request, a clear error', async () => {
    const hang = await flakyApi('hang');
    try {
      const slow = new PowerDnsSiteDns(new PowerDnsClient({ apiUrl: hang.url, apiKey: pdns.apiKey, serverId: 'localhost' }, { timeoutMs: 300, retries: 1, retryDelayMs: 10 }), app.get(SiteRecordsRepository), { ttl: 60 });
      const started = Date.now();
      const error = await caught(slow.lookup('free.dnstest.example'));
      expect(Date.now() - started).toBeLessThan(3_000);
      expect(error).toMatchObject({ code: 'DNS_API_UNREACHABLE' });
      expect(error.message).toContain('did not answer (no answer within 300 ms) after 2 attempts');
    } finally {
      await hang.close();
    }
  });

  it('a zone created after the zone list was cached is managed at once', async () => {
    expect(await dns.lookup('www.late-zone.example')).toBeNull();
    await createZone(pdns, 'late-zone.example');
    const { install } = await order('DNS-LATE', 'free', [{ hostname: 'www.late-zone.example' }]);
    const [change] = await dns.publish(install.id, io);
    expect(change).toMatchObject({ name: 'www.late-zone.example', zone: 'late-zone.example', managed: true });
    expect(await dig(pdns, 'www.late-zone.example', 'A')).toEqual(change!.after.map((r) => r.content));
  });

  it('an unknown install: 404', async () => {
    await expect(dns.planPublish(987_654)).rejects.toMatchObject({ code: 'NOT_FOUND', status: 404 });
  });
});

