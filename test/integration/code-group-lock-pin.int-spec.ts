import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { INestApplicationContext, Type } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { AuditEvent, Install, Job, PinRule, Server, ServerIp, SharedCodeGroup, type NewServer } from '@app/catalog';
import { CodeGroupPins, CodeGroupsService, type CreateCodeGroupDto } from '@app/codebases';
import { HostsModule } from '@app/hosts';
import { CustomerCodeGroupPins, InstallsService, PinRulesService, PrepareService, type CreateInstallDto } from '@app/installs';
import { WebserverModule } from '@app/webserver';
import { CATALOG_KINDS, createTestCatalog, type TestCatalog } from '../support/catalog.js';
import { startQueueContext } from '../support/queue-context.js';
import { testServer } from '../support/server-roots.js';

/** Prepare touches no server: the rows' roots are directories of a scratch folder. */
const scratch = mkdtempSync(join(tmpdir(), 'lock-pin-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
const server = (hostname: string, roles: NewServer['roles']): NewServer => testServer(join(scratch, hostname), hostname, roles, null);
const by = { actor: 'test', via: 'cli' as const };

/** A group's lock and a customer's own codebase (pinFor), against a real catalog and the real prepare. */
describe.each(CATALOG_KINDS)('code group lock and pinFor (%s)', (kind) => {
  let catalog: TestCatalog;
  let app: INestApplicationContext;
  let ds: DataSource;
  let prepare: PrepareService;
  let groups: CodeGroupsService;
  const ids: Record<string, number> = {};
  let n = 0;

  const order = (extra: Partial<CreateInstallDto> = {}): CreateInstallDto =>
    ({ orderRef: `O-${++n}`, customerEmail: 'someone@example.com', license: 'free', sites: [{ hostname: `shop${n}.example.com` }], ...extra }) as CreateInstallDto;
  const group = (name: string, extra: Partial<SharedCodeGroup> = {}) =>
    ds.getRepository(SharedCodeGroup).save({ name, tier: 'free', repoUrl: '/srv/repo', revision: 'abc', path: `/srv/d1/shared_codes/${name}`, masterServerId: ids.d1!, installLimit: 10, installCount: 0, pinned: false, manifest: null, state: 'ready', ...extra });
  const slots = async (id: number) => (await ds.getRepository(SharedCodeGroup).findOneByOrFail({ id })).installCount;
  const newGroup = (name: string, pinFor: CreateCodeGroupDto['pinFor']) =>
    groups.create({ name, tier: 'free', repoUrl: '/srv/repo', revision: 'main', masterServerId: ids.d1!, pinFor } as CreateCodeGroupDto, by);
  const counts = async () => ({
    groups: await ds.getRepository(SharedCodeGroup).count(),
    rules: await ds.getRepository(PinRule).count(),
    jobs: await ds.getRepository(Job).count(),
    audit: await ds.getRepository(AuditEvent).count(),
  });

  beforeAll(async () => {
    catalog = await createTestCatalog(kind, 'lock_pin');
    app = await startQueueContext(
      catalog.url,
      [PrepareService, PinRulesService, InstallsService, CodeGroupsService, { provide: CodeGroupPins, useClass: CustomerCodeGroupPins }],
      null,
      [HostsModule.forRoot({ http: false }), WebserverModule] as unknown as Type[],
    );
    ds = app.get(DataSource);
    prepare = app.get(PrepareService);
    groups = app.get(CodeGroupsService);
    ids.d1 = (await ds.getRepository(Server).save(server('d1.example.net', ['dispatcher', 'handler']))).id;
    ids.db = (await ds.getRepository(Server).save(server('db.example.net', ['database']))).id;
    await ds.getRepository(ServerIp).save({ serverId: ids.d1, ip: '10.0.9.1', kind: 'shared', failoverGroup: null, activeServerId: null });
  });
  afterAll(async () => {
    await app?.close();
    await catalog?.drop();
  });

  it('places no new install in a locked group: orders go to the other group of the tier, or wait; unlocked, it takes orders again', async () => {
    ids.a = (await group('free-a')).id;
    ids.b = (await group('free-b', { installCount: 3 })).id;
    const first = await prepare.prepare(order());
    expect(first.install.sharedCodeGroupId).toBe(ids.a);

    expect(await groups.setLocked('free-a', true, by)).toMatchObject({ locked: true });
    // free-a has the fewest installs, but is locked.
    for (let i = 0; i < 3; i++) expect((await prepare.prepare(order())).install.sharedCodeGroupId).toBe(ids.b);
    expect(await slots(ids.a)).toBe(1);
    // Its installs keep it.
    expect((await ds.getRepository(Install).findOneByOrFail({ id: first.install.id })).sharedCodeGroupId).toBe(ids.a);

    // Every group of the tier locked: the order waits as when none has room.
    await groups.setLocked(ids.b, true, by);
    const waiting = await prepare.prepare(order());
    expect(waiting.install).toMatchObject({ sharedCodeGroupId: null, statusReason: 'waiting for a free code group with room' });
    const installs = app.get(InstallsService);
    expect(await installs.queueWaiting()).toBe(0);

    // Unlocked: the waiting install gets its slot, then new orders land there again.
    expect(await groups.setLocked(ids.a, false, by)).toMatchObject({ locked: false });
    expect(await installs.queueWaiting()).toBe(1);
    expect(await ds.getRepository(Install).findOneByOrFail({ id: waiting.install.id })).toMatchObject({ sharedCodeGroupId: ids.a, status: 'building' });
    expect((await prepare.prepare(order())).install.sharedCodeGroupId).toBe(ids.a);
    expect(await slots(ids.a)).toBe(3);
    expect(await slots(ids.b)).toBe(6);
    await groups.setLocked(ids.b, false, by);

    // Audited once per change (locking a locked group records nothing).
    await groups.setLocked(ids.a, true, by);
    await groups.setLocked(ids.a, true, by);
    await groups.setLocked(ids.a, false, by);
    const audit = await ds.getRepository(AuditEvent).find({ where: { targetType: 'code_group', targetId: String(ids.a) }, order: { id: 'ASC' } });
    expect(audit.map((a) => a.action)).toEqual(['codegroup.lock', 'codegroup.unlock', 'codegroup.lock', 'codegroup.unlock']);
  });

  it('a customer pinned to a locked group waits with the reason, and is placed there once it is unlocked', async () => {
    const own = await group('own-locked', { pinned: true, installLimit: 2, locked: true });
    const rule = await app.get(PinRulesService).create({ matchEmail: 'locked-vip@example.com', codeGroupId: own.id }, by);
    const { install } = await prepare.prepare(order({ customerEmail: 'locked-vip@example.com' }));
    expect(install).toMatchObject({
      sharedCodeGroupId: null,
      statusReason: `waiting: the pinned code group ${own.id} (own-locked) is locked (pin rule ${rule.id}); the order is placed there when it is unlocked`,
    });
    expect(await slots(own.id)).toBe(0);
    await groups.setLocked(own.id, false, by);
    expect(await app.get(InstallsService).queueWaiting()).toBe(1);
    expect(await ds.getRepository(Install).findOneByOrFail({ id: install.id })).toMatchObject({ sharedCodeGroupId: own.id, status: 'building' });
  });

  it('an order an attribute pin rule matches, whose group is full, waits; once room opens it lands on the pinned group and server, never a shared one', async () => {
    const own = await group('own-full', { pinned: true, installLimit: 1, installCount: 1 });
    // A shared group of the tier with room: where the order would land if its attributes were forgotten.
    await group('shared-roomy', { installLimit: 50 });
    await app.get(PinRulesService).create({ matchAttribute: 'reseller', matchValue: 'full-co', codeGroupId: own.id, serverId: ids.d1 }, by);
    const { install } = await prepare.prepare(order({ attributes: { reseller: 'full-co' } }));
    expect(install).toMatchObject({ sharedCodeGroupId: null, statusReason: expect.stringMatching(/^waiting/) });
    expect(await app.get(InstallsService).queueWaiting()).toBe(0);
    await ds.getRepository(SharedCodeGroup).update({ id: own.id }, { installLimit: 2 });
    expect(await app.get(InstallsService).queueWaiting()).toBe(1);
    expect(await ds.getRepository(Install).findOneByOrFail({ id: install.id })).toMatchObject({ sharedCodeGroupId: own.id, masterServerId: ids.d1, status: 'building' });
    expect(await slots(own.id)).toBe(2);
  });

  it("pinFor creates the customer's group (pinned, limit 1) and its pin rule at once; the customer's next order lands there", async () => {
    const before = await counts();
    const { group: created, jobId, pin } = await newGroup('own-bigco', { email: 'BigCo@Example.com' });
    expect(created).toMatchObject({ pinned: true, installLimit: 1, installCount: 0, locked: false, state: 'pending' });
    const rule = await ds.getRepository(PinRule).findOneByOrFail({ id: pin!.ruleId });
    expect(rule).toMatchObject({ matchEmail: 'bigco@example.com', matchAttribute: null, codeGroupId: created.id, serverId: null, priority: 0 });
    expect(await ds.getRepository(Job).findOneByOrFail({ id: jobId })).toMatchObject({ idempotencyKey: `codegroup.clone:${created.id}` });
    expect(await counts()).toEqual({ groups: before.groups + 1, rules: before.rules + 1, jobs: before.jobs + 1, audit: before.audit + 1 });
    const audit = await ds.getRepository(AuditEvent).findOneByOrFail({ action: 'codegroup.create', targetId: String(created.id) });
    expect(audit.details).toMatchObject({ pinFor: { email: 'bigco@example.com' }, pinRuleId: rule.id });

    // Nobody else gets it; the customer does.
    expect((await prepare.prepare(order())).install.sharedCodeGroupId).not.toBe(created.id);
    expect((await prepare.prepare(order({ customerEmail: 'bigco@example.com' }))).install.sharedCodeGroupId).toBe(created.id);

    // By an order attribute.
    const reseller = await newGroup('own-acme', { attribute: { name: 'reseller', value: 'acme' } });
    expect(await ds.getRepository(PinRule).findOneByOrFail({ id: reseller.pin!.ruleId })).toMatchObject({ matchEmail: null, matchAttribute: 'reseller', matchValue: 'acme', codeGroupId: reseller.group.id });
    expect((await prepare.prepare(order({ attributes: { reseller: 'acme' } }))).install.sharedCodeGroupId).toBe(reseller.group.id);
  });

  it('a refused pin rule leaves no group and no job: a customer who already has a rule, or a criterion the pin rules refuse', async () => {
    const before = await counts();
    await expect(newGroup('own-bigco-2', { email: 'bigco@example.com' })).rejects.toMatchObject({ code: 'PIN_RULE_EXISTS', status: 409 });
    await expect(newGroup('own-acme-2', { attribute: { name: 'reseller', value: 'acme' } })).rejects.toMatchObject({ code: 'PIN_RULE_EXISTS' });
    // Past the HTTP DTO (a caller in code): the pin rules' own validation refuses it inside the transaction.
    await expect(newGroup('own-bad', { attribute: { name: 'Bad-Name', value: 'x' } })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    await expect(newGroup('own-bad', { email: 'not-an-email' })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    await expect(newGroup('own-bad', {} as never)).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    expect(await counts()).toEqual(before);
    expect(await ds.getRepository(SharedCodeGroup).count({ where: [{ name: 'own-bigco-2' }, { name: 'own-acme-2' }, { name: 'own-bad' }] })).toBe(0);
  });
});
