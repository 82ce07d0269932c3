import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DataSource } from 'typeorm';
import { Install, Job, Server } from '@app/catalog';
import { createTestCatalog, openCatalog, TEST_SECRETS_KEY, type TestCatalog } from '../support/catalog.js';
import { cleanEnv, runCli } from '../support/processes-engine.js';
import { testServer } from '../support/server-roots.js';
import { codeGroupFor, seedWebInstalls } from '../support/web-installs.js';

/** The cloud snippets as operators run them (the built CLI), on a MariaDB catalog, without a worker (--no-wait). */
describe('cloud snippets', () => {
  let catalog: TestCatalog;
  let cwd: string;
  let env: NodeJS.ProcessEnv;
  let ds: DataSource;
  let cloud: Server;
  let install: Install;

  beforeAll(async () => {
    catalog = await createTestCatalog('mariadb', 'cloudcli');
    cwd = mkdtempSync(join(tmpdir(), 'cloudcli-'));
    env = cleanEnv({ CATALOG_URL: catalog.url, SECRETS_KEY: TEST_SECRETS_KEY, LOG_LEVEL: 'warn' });
    ds = await openCatalog(catalog);
    const d1 = await ds.getRepository(Server).save(testServer(join(cwd, 'd1'), 'd1.cloudcli.test', ['dispatcher', 'handler'], null, { privateIp: '127.0.106.71' }));
    // A handler holds the install at the dispatcher's paths.
    cloud = await ds.getRepository(Server).save(testServer(join(cwd, 'c1'), 'c1.cloudcli.test', ['cloud'], null, { privateIp: '127.0.106.72', homeRoot: d1.homeRoot, sharedCodeRoot: d1.sharedCodeRoot }));
    [install] = await seedWebInstalls(ds, d1, await codeGroupFor(ds, d1), [{ fsName: 'cloudclione', hostname: 'one.cloudcli.test', ip: '127.0.106.121' }], { homes: false });
  });
  afterAll(async () => {
    await ds?.destroy();
    await catalog?.drop();
    rmSync(cwd, { recursive: true, force: true });
  });

  it('sets and clears a lease, refusing a time without a zone', async () => {
    const set = await runCli(['cloud:lease', String(cloud.id), '2031-02-03T04:05:06Z'], cwd, env);
    expect(set).toMatchObject({ code: 0 });
    expect(set.stdout).toContain('c1.cloudcli.test: lease ends 2031-02-03T04:05:06.000Z');
    expect((await ds.getRepository(Server).findOneByOrFail({ id: cloud.id })).leaseExpiresAt?.toISOString()).toBe('2031-02-03T04:05:06.000Z');
    const bad = await runCli(['cloud:lease', String(cloud.id), '2031-02-03 04:05'], cwd, env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('ISO 8601');
    expect((await runCli(['cloud:lease', String(cloud.id), '--clear'], cwd, env)).stdout).toContain('c1.cloudcli.test: no lease');
    expect((await ds.getRepository(Server).findOneByOrFail({ id: cloud.id })).leaseExpiresAt).toBeNull();
  });

  it('queues an addition, refuses what the API refuses, drains and removes with --no-wait', async () => {
    const added = await runCli(['cloud:add-install', String(install.id), String(cloud.id), '--weight', '4', '--no-wait'], cwd, env);
    expect(added).toMatchObject({ code: 0 });
    expect(added.stdout).toMatch(new RegExp(`install ${install.id} on c1\\.cloudcli\\.test: job \\d+ queued`));
    const again = await runCli(['cloud:add-install', String(install.id), String(cloud.id), '--no-wait'], cwd, env);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`server ${cloud.id} already handles install ${install.id}`);
    expect((await runCli(['cloud:add-install', String(install.id), String(cloud.id), '--weight', '101'], cwd, env)).code).toBe(1);

    const busy = await runCli(['cloud:remove', String(cloud.id), '--no-wait'], cwd, env);
    expect(busy.code).toBe(1);
    expect(busy.stderr).toContain('drain it first');
    expect((await runCli(['cloud:drain', String(cloud.id), '--no-wait'], cwd, env)).code).toBe(0);
    expect((await ds.getRepository(Server).findOneByOrFail({ id: cloud.id })).state).toBe('draining');
    // Still being added (no worker ran its job): the removal waits for it.
    const adding = await runCli(['cloud:remove', String(cloud.id), '--no-wait'], cwd, env);
    expect(adding.code).toBe(1);
    expect(adding.stderr).toContain('wait for its job');
    const kinds = (await ds.getRepository(Job).find({ order: { id: 'ASC' } })).map((j) => j.kind);
    expect(kinds).toEqual(expect.arrayContaining(['install.handler-add', 'cloud-server.drain']));
  }, 120_000);
});
