import type { INestApplicationContext, Type } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { AuditLogService, AuditModule } from '@app/audit';
import { AuditEvent, AuditEventRepository } from '@app/catalog';
import { CATALOG_KINDS, createTestCatalog, type TestCatalog } from '../support/catalog.js';
import { startQueueContext } from '../support/queue-context.js';

/** The audit log's filters on both catalog kinds (time comparisons and LIKE escaping differ between MySQL and SQLite). */
describe.each(CATALOG_KINDS)('audit log filters (%s)', (kind) => {
  let catalog: TestCatalog;
  let app: INestApplicationContext;
  let audit: AuditLogService;
  const ids: Record<string, number> = {};

  beforeAll(async () => {
    catalog = await createTestCatalog(kind, 'audit_filters');
    app = await startQueueContext(catalog.url, [], null, [AuditModule.forRoot({ http: false })] as unknown as Type[]);
    audit = app.get(AuditLogService);
    const ds = app.get(DataSource);
    const events: [string, string, string, string, string][] = [
      ['a', 'token:x', 'install.rewrites', '7', '2026-11-01T10:00:00.250Z'],
      ['b', 'token:x', 'install_odd', '7', '2026-11-01T10:00:01.000Z'],
      ['c', 'cli:y', 'install.credentials', '8', '2026-11-02T00:00:00.000Z'],
    ];
    for (const [key, actor, action, target, at] of events) {
      await app.get(AuditEventRepository).record({ actor, via: 'api', action, targetType: 'install', targetId: target });
      const row = (await ds.getRepository(AuditEvent).find({ order: { id: 'DESC' }, take: 1 }))[0]!;
      await ds.getRepository(AuditEvent).update({ id: row.id }, { createdAt: new Date(at) });
      ids[key] = row.id;
    }
  });
  afterAll(async () => {
    await app?.close();
    await catalog?.drop();
  });

  const idsOf = async (query: Parameters<AuditLogService['list']>[0]) => (await audit.list(query)).events.map((e) => e.id);

  it('compares times to the millisecond, since inclusive and until exclusive', async () => {
    expect(await idsOf({ since: '2026-11-01T10:00:00.250Z' })).toEqual([ids.c, ids.b, ids.a]);
    expect(await idsOf({ since: '2026-11-01T10:00:00.251Z' })).toEqual([ids.c, ids.b]);
    expect(await idsOf({ until: '2026-11-01T10:00:01.000Z' })).toEqual([ids.a]);
    expect(await idsOf({ since: '2026-11-01T11:00:00+01:00', until: '2026-11-02' })).toEqual([ids.b, ids.a]);
    expect((await audit.list({ since: '2026-11-01T10:00:00.250Z' })).events.at(-1)!.at).toBe('2026-11-01T10:00:00.250Z');
  });

  it('treats _ and % in an action prefix literally', async () => {
    expect(await idsOf({ action: 'install.*' })).toEqual([ids.c, ids.a]);
    expect(await idsOf({ action: 'install_*' })).toEqual([ids.b]);
    expect(await idsOf({ action: 'install*' })).toEqual([ids.c, ids.b, ids.a]);
  });

  it('filters by install target and pages by id', async () => {
    expect(await idsOf({ installId: 7 })).toEqual([ids.b, ids.a]);
    const page = await audit.list({ installId: 7, limit: 1 });
    expect(page.nextBeforeId).toBe(ids.b);
    expect(await idsOf({ installId: 7, beforeId: page.nextBeforeId! })).toEqual([ids.a]);
  });
});
