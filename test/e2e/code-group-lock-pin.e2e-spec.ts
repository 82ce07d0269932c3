import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { ApiTokensService } from '@app/auth';
import { AuditEvent, Job, PinRule, Server, ServerIp, SharedCodeGroup } from '@app/catalog';
import { PrepareService, type CreateInstallDto } from '@app/installs';
import { startEngine, type RunningEngine } from '../../apps/engine/src/start-engine.js';
import { createTestCatalog, testEngineConfig, TEST_SECRETS_KEY, type TestCatalog } from '../support/catalog.js';
import { cleanEnv, runCli } from '../support/processes-engine.js';
import { testServer } from '../support/server-roots.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = async (res: Response): Promise<any> => res.json();

/**
 * Lock / unlock and pinFor through the admin API and the snippets, on a
 * MariaDB catalog. The engine has the api role only: the clone job is
 * queued, never run (the clone itself is the code groups suite's).
 */
describe('code group lock and pinFor over HTTP and the CLI (mariadb)', () => {
  let catalog: TestCatalog;
  let engine: RunningEngine;
  let token: string;
  let base: string;
  let ds: DataSource;
  const ids: Record<string, number> = {};

  const call = (method: string, path: string, body?: unknown) =>
    fetch(`${engine.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  const counts = async () => ({
    groups: await ds.getRepository(SharedCodeGroup).count(),
    rules: await ds.getRepository(PinRule).count(),
    jobs: await ds.getRepository(Job).count(),
    audit: await ds.getRepository(AuditEvent).count(),
    locked: await ds.getRepository(SharedCodeGroup).count({ where: { locked: true } }),
  });
  const cliEnv = () => cleanEnv({ CATALOG_URL: catalog.url, SECRETS_KEY: TEST_SECRETS_KEY, LOG_LEVEL: 'warn' });
  const groupBody = (name: string, extra: object = {}) => ({ name, tier: 'free', repoUrl: '/srv/repo.git', revision: 'main', masterServerId: ids.d1, ...extra });

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'lock-pin-e2e-'));
    catalog = await createTestCatalog('mariadb', 'lock_pin_e2e');
    engine = await startEngine(testEngineConfig(catalog.url, { ENGINE_ROLES: 'api' }));
    ds = engine.app.get(DataSource);
    token = (await engine.app.get(ApiTokensService).issue('ops', ['admin'], { actor: 'test', via: 'cli' })).token;
    ids.d1 = (await ds.getRepository(Server).save(testServer(join(base, 'd1'), 'd1.example.net', ['dispatcher', 'handler', 'database'], null))).id;
    await ds.getRepository(ServerIp).save({ serverId: ids.d1, ip: '127.0.109.1', kind: 'shared', failoverGroup: null, activeServerId: null });
    const res = await call('POST', '/v1/code-groups', groupBody('shared-1', { installLimit: 50 }));
    expect(res.status).toBe(202);
    ids.shared = (await json(res)).group.id;
  });
  afterAll(async () => {
    await engine?.close();
    await catalog?.drop();
    rmSync(base, { recursive: true, force: true });
  });

  it('locks and unlocks a group with PATCH {locked}; GET shows it', async () => {
    let res = await call('PATCH', `/v1/code-groups/${ids.shared}`, { locked: true });
    expect(res.status).toBe(200);
    expect(await json(res)).toMatchObject({ id: ids.shared, locked: true, state: 'pending' });
    res = await call('GET', '/v1/code-groups');
    expect((await json(res)).find((g: { id: number }) => g.id === ids.shared)).toMatchObject({ locked: true });
    res = await call('PATCH', `/v1/code-groups/${ids.shared}`, { locked: false });
    expect(await json(res)).toMatchObject({ locked: false });
    expect((await ds.getRepository(AuditEvent).find({ where: { targetType: 'code_group', targetId: String(ids.shared) }, order: { id: 'ASC' } })).map((a) => [a.action, a.actor])).toEqual([
      ['codegroup.create', 'token:ops'],
      ['codegroup.lock', 'token:ops'],
      ['codegroup.unlock', 'token:ops'],
    ]);
  });

  it('refuses a bad PATCH or pinFor with the field named, and changes nothing', async () => {
    const before = await counts();
    const refusals: [string, string, object, string][] = [
      ['PATCH', `/v1/code-groups/${ids.shared}`, {}, 'state'],
      ['PATCH', `/v1/code-groups/${ids.shared}`, { locked: 'yes' }, 'locked'],
      ['PATCH', `/v1/code-groups/${ids.shared}`, { locked: true, state: 'ready' }, 'state'],
      ['PATCH', `/v1/code-groups/${ids.shared}`, { locked: true, owner: 'x' }, 'owner'],
      ['POST', '/v1/code-groups', groupBody('own-a', { pinFor: { email: 'not-an-email' } }), 'pinFor.email'],
      ['POST', '/v1/code-groups', groupBody('own-a', { pinFor: {} }), 'pinFor.email'],
      ['POST', '/v1/code-groups', groupBody('own-a', { pinFor: { email: 'a@example.com', attribute: { name: 'reseller', value: 'acme' } } }), 'pinFor'],
      ['POST', '/v1/code-groups', groupBody('own-a', { pinFor: { attribute: { name: 'Bad-Name', value: 'acme' } } }), 'pinFor.attribute.name'],
      ['POST', '/v1/code-groups', groupBody('own-a', { pinFor: { attribute: { name: 'reseller', value: 'line\nbreak' } } }), 'pinFor.attribute.value'],
      ['POST', '/v1/code-groups', groupBody('own-a', { pinFor: { attribute: 'acme' } }), 'pinFor.attribute'],
      ['POST', '/v1/code-groups', groupBody('own-a', { pinFor: 'a@example.com' }), 'pinFor'],
      ['POST', '/v1/code-groups', groupBody('own-a', { pinFor: { email: 'a@example.com' }, pinned: false }), 'pinned'],
      ['POST', '/v1/code-groups', groupBody('own-a', { pinFor: { email: 'a@example.com', extra: 1 } }), 'pinFor.extra'],
      ['POST', '/v1/code-groups', groupBody('own-a'), 'installLimit'],
    ];
    for (const [method, path, body, field] of refusals) {
      const res = await call(method, path, body);
      const answer = await json(res);
      expect({ body, status: res.status, code: answer.code }).toEqual({ body, status: 400, code: 'VALIDATION_FAILED' });
      expect({ body, fields: answer.details.fields.map((f: { field: string }) => f.field) }).toEqual({ body, fields: expect.arrayContaining([field]) });
    }
    expect(await counts()).toEqual(before);
  });

  it("POST with pinFor answers with the pinned group and its rule; the customer's next order lands there; a second pinFor for them is refused and creates nothing", async () => {
    let res = await call('POST', '/v1/code-groups', groupBody('own-bigco', { pinFor: { email: 'Owner@BigCo.example' } }));
    expect(res.status).toBe(202);
    const created = await json(res);
    expect(created.group).toMatchObject({ name: 'own-bigco', pinned: true, installLimit: 1, locked: false });
    expect(created.pinRuleId).toEqual(expect.any(Number));
    res = await call('GET', '/v1/pin-rules');
    expect((await json(res)).find((r: { id: number }) => r.id === created.pinRuleId)).toMatchObject({ matchEmail: 'owner@bigco.example', codeGroupId: created.group.id, priority: 0 });
    const order = { orderRef: 'BIG-1', customerEmail: 'owner@bigco.example', license: 'free', sites: [{ hostname: 'bigco.example.com' }] } as CreateInstallDto;
    const { install } = await engine.app.get(PrepareService).prepare(order);
    expect(install.sharedCodeGroupId).toBe(created.group.id);

    const before = await counts();
    res = await call('POST', '/v1/code-groups', groupBody('own-bigco-2', { pinFor: { email: 'owner@bigco.example' } }));
    expect(res.status).toBe(409);
    expect(await json(res)).toMatchObject({ code: 'PIN_RULE_EXISTS' });
    expect(await counts()).toEqual(before);
  });

  it('codegroup:lock / codegroup:unlock take an id or a name', async () => {
    let run = await runCli(['codegroup:lock', 'shared-1'], base, cliEnv());
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`code group #${ids.shared} shared-1 locked`);
    expect((await ds.getRepository(SharedCodeGroup).findOneByOrFail({ id: ids.shared })).locked).toBe(true);
    run = await runCli(['codegroup:unlock', String(ids.shared)], base, cliEnv());
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`code group #${ids.shared} shared-1 unlocked`);
    expect((await ds.getRepository(SharedCodeGroup).findOneByOrFail({ id: ids.shared })).locked).toBe(false);
    expect((await ds.getRepository(AuditEvent).find({ where: { targetId: String(ids.shared) }, order: { id: 'ASC' } })).slice(-2).map((a) => [a.action, a.via])).toEqual([
      ['codegroup.lock', 'cli'],
      ['codegroup.unlock', 'cli'],
    ]);
    const missing = await runCli(['codegroup:lock', 'no-such-group'], base, cliEnv());
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('Code group no-such-group does not exist');
    const bad = await runCli(['codegroup:unlock', '../etc'], base, cliEnv());
    expect(bad.code).toBe(1);
  }, 120_000);
});
