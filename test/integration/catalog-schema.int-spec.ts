import type { DataSource } from 'typeorm';
import {
  CATALOG_ENTITIES,
  Install,
  InstallServer,
  InstallSite,
  InstallSiteIp,
  Server,
  ServerIp,
  SharedCodeGroup,
  SiteName,
  schemaDiff,
} from '@app/catalog';
import { CATALOG_KINDS, createTestCatalog, openCatalog, type TestCatalog } from '../support/catalog.js';

/** The same schema tests on both catalog drivers: MariaDB (production) and SQLite (embedded). */
describe.each(CATALOG_KINDS)('catalog schema on %s', (kind) => {
  let test: TestCatalog;
  let db: DataSource;
  let seq = 0;

  beforeAll(async () => {
    test = await createTestCatalog(kind, 'schema');
    db = await openCatalog(test);
  });
  afterAll(async () => {
    await db?.destroy();
    await test?.drop();
  });

  const server = (over: Partial<Server> = {}) =>
    db.getRepository(Server).save({
      hostname: `dispatch${++seq}.example.net`,
      privateIp: `10.0.0.${seq}`,
      roles: ['handler', 'dispatcher'],
      transport: 'ssh',
      homeRoot: '/usr/home',
      sharedCodeRoot: '/home/shared_codes',
      nginxConfDir: '/etc/nginx/shops',
      cronDir: '/etc/cron.d',
      certsRoot: '/usr/home/certs',
      ...over,
    } as Server);

  const install = async (over: Partial<Install> = {}) => {
    const n = ++seq;
    return db.getRepository(Install).save({
      orderRef: `order-${n}`,
      customerEmail: `c${n}@example.com`,
      license: 'free',
      fsName: `shop${n}`,
      dbName: `shop${n}_db`,
      dbUser: `shop${n}_u`,
      dbPasswordEnc: 'ciphertext',
      ...over,
    } as Install);
  };

  /** A site, and its claims on its names (as prepare makes them) unless `live` is false. */
  const site = async (installId: number, hostname: string, live = true, secureHostname: string | null = null) => {
    const row = await db.getRepository(InstallSite).save({ installId, hostname, secureHostname } as InstallSite);
    if (live) {
      for (const name of new Set([hostname, ...(secureHostname ? [secureHostname] : [])])) {
        await db.getRepository(SiteName).insert({ installId, installSiteId: row.id, name });
      }
    }
    return row;
  };

  it('has every entity table and no drift between the migrations and the entities', async () => {
    const tables = CATALOG_ENTITIES.map((e) => db.getMetadata(e).tableName);
    const runner = db.createQueryRunner();
    try {
      for (const table of tables) expect(await runner.hasTable(table)).toBe(true);
    } finally {
      await runner.release();
    }
    expect(tables.sort()).toEqual(
      [
        'access_log_cursors',
        'api_tokens',
        'audit_events',
        'code_releases',
        'code_update_items',
        'code_updates',
        'database_move_items',
        'database_moves',
        'database_updates',
        'dispatcher_configs',
        'failover_nodes',
        'ftp_accounts',
        'handler_configs',
        'install_backups',
        'install_servers',
        'install_site_ips',
        'install_sites',
        'installs',
        'ip_pool_alerts',
        'job_logs',
        'jobs',
        'pin_rules',
        'pool_quarantines',
        'queue_listeners',
        'recurring_tasks',
        'saga_steps',
        'server_ips',
        'servers',
        'shared_code_groups',
        'site_health',
        'site_incidents',
        'site_names',
        'site_usage',
        'startup_mounts',
        'theme_syncs',
        'web_quarantines',
      ].sort(),
    );
    expect((await schemaDiff(db)).up).toEqual([]);
  });

  it('stores the roles list and reads it back', async () => {
    const s = await server({ roles: ['handler', 'dispatcher', 'handler'] as Server['roles'] });
    const read = await db.getRepository(Server).findOneByOrFail({ id: s.id });
    expect(read.roles).toEqual(['dispatcher', 'handler']);
    expect(read.state).toBe('active');
    expect(read.createdAt).toBeInstanceOf(Date);
  });

  it('keeps order references, fs names, database names and users unique', async () => {
    const a = await install();
    await expect(install({ orderRef: a.orderRef })).rejects.toThrow();
    await expect(install({ fsName: a.fsName })).rejects.toThrow();
    await expect(install({ dbName: a.dbName })).rejects.toThrow();
    await expect(install({ dbUser: a.dbUser })).rejects.toThrow();
    expect(await db.getRepository(Install).countBy({ customerEmail: a.customerEmail })).toBe(1);
  });

  it('lets a hostname or secure hostname belong to at most one live install', async () => {
    const a = await install();
    const b = await install();
    await site(a.id, 'shop.example.com', true, 'secure.shop.example.com');
    await expect(site(b.id, 'shop.example.com')).rejects.toThrow();
    // A secure hostname cannot take another shop's hostname, nor a hostname another shop's secure hostname.
    await expect(site(b.id, 'other.example.com', true, 'shop.example.com')).rejects.toThrow();
    await expect(site(b.id, 'secure.shop.example.com')).rejects.toThrow();
    // Once the first install has failed its claims are released, and the names are free again.
    await db.getRepository(SiteName).delete({ installId: a.id });
    await expect(site(b.id, 'shop.example.com', true, 'secure.shop.example.com')).resolves.toMatchObject({ hostname: 'shop.example.com' });
    // Released claims never collide with each other.
    await site(a.id, 'old.example.com', false);
    await site(b.id, 'old.example.com', false);
  });

  it('compares names byte for byte: an accent or a case never blocks another name', async () => {
    const a = await install();
    const b = await install();
    await site(a.id, 'cafe.example.com');
    await expect(site(b.id, 'caf\u00e9.example.com')).resolves.toMatchObject({ hostname: 'caf\u00e9.example.com' });
    await expect(site(b.id, 'CAFE.example.com')).resolves.toMatchObject({ hostname: 'CAFE.example.com' });
    expect(await db.getRepository(InstallSite).countBy({ hostname: 'cafe.example.com' })).toBe(1);
  });

  it('lets a dedicated IP be held by one site only, a shared IP by many', async () => {
    const s = await server();
    const dedicated = await db.getRepository(ServerIp).save({ serverId: s.id, ip: `198.51.100.${++seq}`, kind: 'dedicated' } as ServerIp);
    const shared = await db.getRepository(ServerIp).save({ serverId: s.id, ip: `198.51.100.${++seq}`, kind: 'shared' } as ServerIp);
    await expect(db.getRepository(ServerIp).save({ serverId: s.id, ip: dedicated.ip, kind: 'shared' } as ServerIp)).rejects.toThrow();
    const a = await site((await install()).id, `a${seq}.example.com`);
    const b = await site((await install()).id, `b${seq}.example.com`);
    const siteIps = db.getRepository(InstallSiteIp);
    await siteIps.save({ installSiteId: a.id, serverIpId: dedicated.id, serverId: s.id, exclusiveIpId: dedicated.id } as InstallSiteIp);
    await expect(
      siteIps.save({ installSiteId: b.id, serverIpId: dedicated.id, serverId: s.id, exclusiveIpId: dedicated.id } as InstallSiteIp),
    ).rejects.toThrow();
    await siteIps.save({ installSiteId: a.id, serverIpId: shared.id, serverId: s.id, exclusiveIpId: null } as InstallSiteIp);
    await siteIps.save({ installSiteId: b.id, serverIpId: shared.id, serverId: s.id, exclusiveIpId: null } as InstallSiteIp);
    expect(await siteIps.countBy({ serverIpId: shared.id })).toBe(2);
    // The same IP twice for one site is refused too.
    await expect(
      siteIps.save({ installSiteId: a.id, serverIpId: shared.id, serverId: s.id, exclusiveIpId: null } as InstallSiteIp),
    ).rejects.toThrow();
  });

  it('removes an install with its sites, site IPs and server rows, and keeps servers that host things', async () => {
    const s = await server();
    const ip = await db.getRepository(ServerIp).save({ serverId: s.id, ip: `203.0.113.${++seq}`, kind: 'dedicated' } as ServerIp);
    const group = await db.getRepository(SharedCodeGroup).save({
      name: `code_share_free_${seq}`,
      tier: 'free',
      repoUrl: 'file:///srv/code.git',
      path: `/home/shared_codes/code_share_free_${seq}`,
      masterServerId: s.id,
      installLimit: 2,
    } as SharedCodeGroup);
    const i = await install({ sharedCodeGroupId: group.id, masterServerId: s.id, dbServerId: s.id });
    const st = await site(i.id, `cascade${seq}.example.com`);
    await db.getRepository(InstallSiteIp).save({ installSiteId: st.id, serverIpId: ip.id, serverId: s.id, exclusiveIpId: ip.id } as InstallSiteIp);
    await db.getRepository(InstallServer).save({ installId: i.id, serverId: s.id, role: 'master' } as InstallServer);
    await expect(db.getRepository(InstallServer).save({ installId: i.id, serverId: s.id, role: 'replica' } as InstallServer)).rejects.toThrow();

    await expect(db.getRepository(Server).delete({ id: s.id })).rejects.toThrow();
    await expect(db.getRepository(SharedCodeGroup).delete({ id: group.id })).rejects.toThrow();

    await db.getRepository(Install).delete({ id: i.id });
    expect(await db.getRepository(InstallSite).countBy({ installId: i.id })).toBe(0);
    expect(await db.getRepository(InstallSiteIp).countBy({ serverIpId: ip.id })).toBe(0);
    expect(await db.getRepository(InstallServer).countBy({ installId: i.id })).toBe(0);
    expect(await db.getRepository(ServerIp).countBy({ id: ip.id })).toBe(1);
  });

  it('reverts every migration down to an empty catalog', async () => {
    const other = await createTestCatalog(kind, 'revert');
    const fresh = await openCatalog(other);
    try {
      for (let i = 0; i < fresh.migrations.length; i++) await fresh.undoLastMigration({ transaction: 'each' });
      const runner = fresh.createQueryRunner();
      for (const entity of CATALOG_ENTITIES) {
        expect(await runner.hasTable(fresh.getMetadata(entity).tableName)).toBe(false);
      }
      await runner.release();
      // And forward again: the migrations are repeatable.
      await fresh.runMigrations({ transaction: 'each' });
      expect((await schemaDiff(fresh)).up).toEqual([]);
    } finally {
      await fresh.destroy();
      await other.drop();
    }
  });
});
