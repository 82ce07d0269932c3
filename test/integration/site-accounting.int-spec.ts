import { appendFileSync, mkdtempSync, renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { SiteAccounting } from '@app/accounting';
import { ApiTokensService } from '@app/auth';
import { catalogDataSourceOptions, Install, InstallSite, Server, SiteName, SiteUsage } from '@app/catalog';
import { ServerAccess } from '@app/hosts';
import { DispatcherInputLoader } from '@app/webserver';
import { startEngine, type RunningEngine } from '../../apps/engine/src/start-engine.js';
import { createTestCatalog, testEngineConfig, type TestCatalog } from '../support/catalog.js';
import { testServer } from '../support/server-roots.js';
import { readTestbed } from '../support/testbed.js';

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** A generated access log in the `shop_host` format, and its counts computed the plain way (split on spaces). */
class LogWriter {
  private seed = 7;
  readonly lines: string[] = [];

  private random(n: number): number {
    this.seed = (this.seed * 1103515245 + 12345) % 2 ** 31;
    return this.seed % n;
  }

  make(count: number, hosts: string[], start: Date): string {
    let text = '';
    for (let i = 0; i < count; i++) {
      const at = new Date(start.getTime() + i * 97_000);
      const zone = this.random(3) === 0 ? '+0200' : '+0000';
      const local = new Date(at.getTime() + (zone === '+0200' ? 2 * 3600_000 : 0));
      const stamp = `${String(local.getUTCDate()).padStart(2, '0')}/${MONTHS[local.getUTCMonth()]}/${local.getUTCFullYear()}:${String(local.getUTCHours()).padStart(2, '0')}:${String(local.getUTCMinutes()).padStart(2, '0')}:${String(local.getUTCSeconds()).padStart(2, '0')} ${zone}`;
      const request = this.random(5) === 0 ? 'GET /search?q=a b "quoted" HTTP/1.1' : `GET /p/${this.random(1000)} HTTP/1.1`;
      const line = `${hosts[this.random(hosts.length)]} 198.51.100.${this.random(250)} [${stamp}] "${request}" ${[200, 404, 301][this.random(3)]} ${this.random(90_000)}`;
      this.lines.push(line);
      text += line + '\n';
    }
    return text;
  }

  /** Hits and bytes per host and UTC day of the given lines, parsed independently of the engine's parser. */
  static expected(lines: string[]): Map<string, { hits: number; bytes: number }> {
    const totals = new Map<string, { hits: number; bytes: number }>();
    for (const line of lines) {
      const host = line.split(' ')[0]!;
      const stamp = /\[(\d\d)\/(\w{3})\/(\d{4}):(\d\d):(\d\d):(\d\d) ([+-]\d{4})\]/.exec(line)!;
      const iso = `${stamp[3]}-${String(MONTHS.indexOf(stamp[2]!) + 1).padStart(2, '0')}-${stamp[1]}T${stamp[4]}:${stamp[5]}:${stamp[6]}${stamp[7]!.slice(0, 3)}:${stamp[7]!.slice(3)}`;
      const day = new Date(iso).toISOString().slice(0, 10);
      const bytes = Number(line.split(' ').pop());
      const key = `${host} ${day}`;
      const t = totals.get(key) ?? { hits: 0, bytes: 0 };
      t.hits++;
      t.bytes += bytes;
      totals.set(key, t);
    }
    return totals;
  }
}

describe.each(['mariadb', 'sqlite'] as const)('site accounting on %s (MariaDB: a dispatcher over SSH; SQLite: a local one)', (kind) => {
  let catalog: TestCatalog;
  let ds: DataSource;
  let scratch: string;
  let server: Server;
  let access: ServerAccess;
  let accounting: SiteAccounting;
  let log: string;
  const writer = new LogWriter();
  const counted: string[] = [];
  let installA: number;
  let installB: number;

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'accounting-'));
    log = join(scratch, 'shops-access.log');
    catalog = await createTestCatalog(kind, 'accounting');
    const config = testEngineConfig(catalog.url, { ENGINE_ROLES: 'worker' });
    ds = new DataSource(await catalogDataSourceOptions(catalog.catalog));
    await ds.initialize();
    await ds.runMigrations();
    const sshd = kind === 'mariadb' ? readTestbed().sshd : null;
    server = await ds.getRepository(Server).save(testServer(join(scratch, 'd1'), 'acct-d1.example.net', ['dispatcher'], sshd));
    const install = async (ref: string, names: string[]) => {
      const row = await ds.getRepository(Install).save({ orderRef: ref, customerEmail: 'c@example.com', license: 'paid' as const, fsName: ref, dbName: ref, dbUser: ref, dbPasswordEnc: 'x', status: 'live' as const });
      const site = await ds.getRepository(InstallSite).save({ installId: row.id, hostname: names[0]!, secureHostname: names[1] ?? null } as InstallSite);
      for (const name of names) await ds.getRepository(SiteName).insert({ installId: row.id, installSiteId: site.id, name });
      return row.id;
    };
    installA = await install('accta', ['a.shop.example', 'secure.a.shop.example']);
    installB = await install('acctb', ['b.shop.example']);
    access = new ServerAccess(config);
    accounting = new SiteAccounting(ds, access, new DispatcherInputLoader(ds, config));
  });
  afterAll(async () => {
    // Built outside Nest, so no module destroy closes its pooled SSH connection: left open, it kept the Jest worker alive.
    access?.onModuleDestroy();
    await ds?.destroy();
    await catalog?.drop();
    rmSync(scratch, { recursive: true, force: true });
  });

  const hosts = ['a.shop.example', 'secure.a.shop.example', 'b.shop.example', 'scanner.invalid'];
  const known = new Set(hosts.slice(0, 3));
  const owner = (host: string) => (host.includes('a.shop') ? installA : installB);

  /** The catalog's counters against the lines counted so far, computed independently. */
  const expectCounts = async () => {
    const expected = [...LogWriter.expected(counted.filter((l) => known.has(l.split(' ')[0]!)))].map(([key, t]) => {
      const [hostname, day] = key.split(' ');
      return { installId: owner(hostname!), hostname, day, hits: t.hits, bytes: t.bytes };
    });
    const rows = (await ds.getRepository(SiteUsage).find()).map((r) => ({ installId: r.installId, hostname: r.hostname, day: r.day, hits: Number(r.hits), bytes: Number(r.bytes) }));
    const order = (x: { hostname?: string; day?: string }, y: { hostname?: string; day?: string }) => `${x.hostname} ${x.day}`.localeCompare(`${y.hostname} ${y.day}`);
    expect(rows.sort(order)).toEqual(expected.sort(order));
  };

  it('counts whole lines from where it stopped: a line cut by the writer waits for its end', async () => {
    const text = writer.make(3000, hosts, new Date('2026-12-01T20:00:00Z'));
    writeFileSync(log, text.slice(0, text.length - 40));
    const first = await accounting.account(server, log);
    counted.push(...writer.lines.slice(0, 2999));
    expect(first).toMatchObject({ lines: 2999, malformed: 0, rotated: false });
    expect(first.unknownHostLines).toBe(counted.filter((l) => l.startsWith('scanner.invalid ')).length);
    await expectCounts();
    appendFileSync(log, text.slice(text.length - 40));
    expect(await accounting.account(server, log)).toMatchObject({ lines: 1, bytes: Buffer.byteLength(writer.lines[2999]!) + 1 });
    counted.push(writer.lines[2999]!);
    await expectCounts();
    // Nothing new: nothing counted twice.
    expect(await accounting.account(server, log)).toMatchObject({ lines: 0, bytes: 0 });
    await expectCounts();
  });

  it('follows a rotation: the rest of the old file (late writes) first, then the new file', async () => {
    const before = writer.lines.length;
    appendFileSync(log, writer.make(500, hosts, new Date('2026-12-02T10:00:00Z')));
    renameSync(log, `${log}.1`);
    appendFileSync(`${log}.1`, writer.make(50, hosts, new Date('2026-12-02T23:00:00Z')));
    writeFileSync(log, writer.make(700, hosts, new Date('2026-12-03T00:30:00Z')));
    const pass = await accounting.account(server, log);
    expect(pass).toMatchObject({ rotated: true, lines: 1250, notes: [] });
    counted.push(...writer.lines.slice(before));
    await expectCounts();
  });

  it('says what it could not count when the log rotated twice between passes, and counts the rest once', async () => {
    appendFileSync(log, writer.make(100, hosts, new Date('2026-12-03T05:00:00Z')));
    const lost = writer.lines.length;
    renameSync(log, `${log}.1`);
    renameSync(`${log}.1`, `${log}.2`);
    writeFileSync(`${log}.1`, writer.make(10, hosts, new Date('2026-12-03T06:00:00Z')));
    const kept = writer.lines.length;
    writeFileSync(log, writer.make(200, hosts, new Date('2026-12-03T07:00:00Z')));
    const pass = await accounting.account(server, log);
    expect(pass.rotated).toBe(true);
    expect(pass.notes.join('\n')).toMatch(/rotated more than once/);
    expect(pass.lines).toBe(200);
    counted.push(...writer.lines.slice(kept));
    void lost;
    await expectCounts();
  });

  it('starts again at 0 on a file truncated in place (copytruncate)', async () => {
    truncateSync(log, 0);
    const before = writer.lines.length;
    writeFileSync(log, writer.make(30, hosts, new Date('2026-12-03T09:00:00Z')));
    const pass = await accounting.account(server, log);
    expect(pass.lines).toBe(30);
    expect(pass.notes.join('\n')).toMatch(/truncated in place/);
    counted.push(...writer.lines.slice(before));
    await expectCounts();
  });

  it('counts each line once when two passes meet (the cursor guards the counters)', async () => {
    const before = writer.lines.length;
    appendFileSync(log, writer.make(400, hosts, new Date('2026-12-03T10:00:00Z')));
    const results = await Promise.allSettled([accounting.account(server, log), accounting.account(server, log)]);
    const done = results.filter((r) => r.status === 'fulfilled');
    expect(done.length).toBeGreaterThanOrEqual(1);
    for (const r of results) if (r.status === 'rejected') expect(String(r.reason)).toMatch(/moved meanwhile|Duplicate|UNIQUE|Deadlock|locked/i);
    counted.push(...writer.lines.slice(before));
    await accounting.account(server, log);
    await expectCounts();
  });

  if (kind === 'mariadb') {
    it('answers GET /v1/installs/:id/usage per day and hostname, with totals; bad ranges 400, unknown 404', async () => {
      let engine: RunningEngine | undefined;
      try {
        engine = await startEngine(testEngineConfig(catalog.url, { ENGINE_ROLES: 'api' }));
        const { token } = await engine.app.get(ApiTokensService).issue('usage', ['support'], { actor: 'test', via: 'cli' });
        const get = (path: string) => fetch(`${engine!.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
        const res = await get(`/v1/installs/${installA}/usage?from=2026-11-20&to=2026-12-31`);
        expect(res.status).toBe(200);
        const body = (await res.json()) as { days: { day: string; hostname: string; hits: number; bytes: number }[]; totals: { hits: number; bytes: number } };
        const mine = LogWriter.expected(counted.filter((l) => l.startsWith('a.shop.example ') || l.startsWith('secure.a.shop.example ')));
        expect(body.totals.hits).toBe([...mine.values()].reduce((n, t) => n + t.hits, 0));
        expect(body.totals.bytes).toBe([...mine.values()].reduce((n, t) => n + t.bytes, 0));
        expect(new Set(body.days.map((d) => d.hostname))).toEqual(new Set(['a.shop.example', 'secure.a.shop.example']));
        const oneDay = (await (await get(`/v1/installs/${installA}/usage?from=2026-12-02&to=2026-12-02`)).json()) as { days: { day: string }[] };
        expect(new Set(oneDay.days.map((d) => d.day))).toEqual(new Set(['2026-12-02']));
        expect((await get(`/v1/installs/${installA}/usage?from=2026-12-05&to=2026-12-01`)).status).toBe(400);
        expect((await get(`/v1/installs/${installA}/usage?from=2020-01-01&to=2026-12-01`)).status).toBe(400);
        expect((await get(`/v1/installs/${installA}/usage?from=yesterday`)).status).toBe(400);
        expect((await get(`/v1/installs/999999/usage`)).status).toBe(404);
        expect((await fetch(`${engine.url}/v1/installs/${installA}/usage`)).status).toBe(401);
      } finally {
        await engine?.close();
      }
    });
  }
});
