import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { INestApplicationContext, Type } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { AuditEvent, Install, InstallServer, Job, SagaStep, Server, ServerIp, SharedCodeGroup } from '@app/catalog';
import { CloudHandlersModule, InstallHandlersService } from '@app/cloud-handlers';
import { buildSampleRepository, CodebasesModule, SAMPLE_MANIFEST, type SampleRepository } from '@app/codebases';
import { TenantDatabases } from '@app/databases';
import { HostsModule } from '@app/hosts';
import { type CreateInstallDto, decryptSecret, InstallBuildSteps, InstallsModule, PrepareService, RemovalModule } from '@app/installs';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { SagaModule, type StepIO } from '@app/saga';
import mysql from 'mysql2/promise';
import { createTestCatalog, type TestCatalog } from '../support/catalog.js';
import { startDispatcherWeb, stopDispatcherWeb, type DispatcherWeb } from '../support/dispatcher-web.js';
import { startMountNamespace, stopMountNamespace, type MountNamespace } from '../support/mount-namespace.js';
import { startPhpFpm, stopPhpFpm, type PhpFpm } from '../support/php-fpm.js';
import { eventually, startQueueContext } from '../support/queue-context.js';
import { checkoutGroup, testServer } from '../support/server-roots.js';
import { startSshd, stopSshd } from '../support/sshd.js';
import { writeDbOptionsFile } from '../support/tenant-db-server.js';
import { readTestbed, type SshdServer } from '../support/testbed.js';
import { fetchSite } from '../support/web-installs.js';
import { vhostOf } from '../support/nginx.js';

/**
 * The add- and remove-handler sagas against real servers: a live install
 * on an SSH dispatcher (nginx, php-fpm), a cloud reached over its own sshd
 * with its own php-fpm on its private IP, the testbed's MariaDB as the
 * tenant database server, a worker running the jobs. Unmanaged PHP (the
 * company's shared pool on port 9000): the per-install pools join at merge.
 */
describe('install handlers: add and remove a cloud (SSH, nginx, php-fpm, MariaDB)', () => {
  let catalog: TestCatalog;
  let app: INestApplicationContext;
  let ds: DataSource;
  let base: string;
  let repo: SampleRepository;
  let cloudSshd: SshdServer;
  let web: DispatcherWeb;
  let cloudFpm: PhpFpm;
  let cloudMachine: MountNamespace;
  const servers: Record<string, Server> = {};
  let install: Install;
  const io: StepIO = { log: () => undefined, signal: new AbortController().signal };
  const by = { actor: 'test', via: 'cli' as const };

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'install-handlers-'));
    chmodSync(base, 0o755);
    // The cloud is another machine with the dispatcher's layout: its own home and shared code behind d1's roots (a mount namespace).
    const binds = ['home', 'shared_codes'].map((dir) => ({ source: join(base, 'c1/srv', dir), target: join(base, 'd1/srv', dir) }));
    for (const bind of binds) for (const path of [bind.source, bind.target]) mkdirSync(path, { recursive: true });
    cloudMachine = await startMountNamespace(join(base, 'ns-c1.log'), binds);
    [catalog, cloudSshd, repo] = await Promise.all([
      createTestCatalog('mariadb', 'install_handlers'),
      startSshd(join(base, 'sshd-c1'), '127.0.106.2', { mountNamespace: cloudMachine.pid }),
      buildSampleRepository(join(base, 'repo')),
    ]);
    app = await startQueueContext(catalog.url, [], { concurrency: 2, pollMs: 20, reapEveryMs: 500 }, [
      InstallsModule.forRoot({ http: false }), RemovalModule.forRoot({ http: false, jobs: true }), HostsModule.forRoot({ http: false }), CodebasesModule.forRoot({ http: false }), SagaModule, CloudHandlersModule.forRoot({ http: false, jobs: true }),
    ] as unknown as Type[]);
    ds = app.get(DataSource);
    const d1 = testServer(join(base, 'd1'), 'd1.handlers.test', ['dispatcher', 'handler'], readTestbed().sshd, { privateIp: '127.0.106.81' });
    web = await startDispatcherWeb(join(base, 'web-d1'), d1.nginxConfDir, '127.0.106.81');
    servers.d1 = await ds.getRepository(Server).save({ ...d1, nginxPidFile: web.pidFile });
    servers.c1 = await ds.getRepository(Server).save(testServer(join(base, 'c1'), 'c1.handlers.test', ['cloud'], cloudSshd, { privateIp: '127.0.106.82', homeRoot: d1.homeRoot, sharedCodeRoot: d1.sharedCodeRoot }));
    cloudFpm = await startPhpFpm(join(base, 'fpm-c1'), '127.0.106.82', 9000, { mountNamespace: cloudMachine.pid });
    servers.db = await ds.getRepository(Server).save(testServer(join(base, 'db'), 'db.handlers.test', ['database'], null, { dbOptionsFile: writeDbOptionsFile(base), privateIp: '127.0.0.1' }));
    await ds.getRepository(ServerIp).save({ serverId: servers.d1.id, ip: '127.0.106.91', kind: 'shared', failoverGroup: null, activeServerId: null });
    checkoutGroup(repo.path, servers.d1.sharedCodeRoot, 'paid-1', repo.revisions[1]!);
    await ds.getRepository(SharedCodeGroup).save({
      name: 'paid-1', tier: 'free', repoUrl: repo.path, revision: repo.revisions[1]!, path: join(servers.d1.sharedCodeRoot, 'paid-1'), masterServerId: servers.d1.id,
      installLimit: 10, installCount: 0, pinned: false, manifest: JSON.parse(JSON.stringify(SAMPLE_MANIFEST)), state: 'ready',
    });
    // A live install on d1, built by the build's own steps (the welcome mail aside).
    const { install: prepared } = await app.get(PrepareService).prepare({ orderRef: 'HANDLERS-1', customerEmail: 'owner@example.com', license: 'free', sites: [{ hostname: 'www.handlers.test' }], serverId: servers.d1.id } as CreateInstallDto);
    const steps = app.get(InstallBuildSteps);
    await ds.getRepository(Install).update({ id: prepared.id }, { status: 'building' });
    const context = await steps.loadContext(prepared.id, null);
    for (const step of steps.steps().filter((s) => s.name !== 'mail')) await step.execute(context, io);
    await ds.getRepository(Install).update({ id: prepared.id }, { status: 'live' });
    install = await ds.getRepository(Install).findOneByOrFail({ id: prepared.id });
  });
  afterAll(async () => {
    await app?.close();
    await catalog?.drop();
    await Promise.allSettled([stopDispatcherWeb(web), cloudFpm && stopPhpFpm(cloudFpm), cloudSshd && stopSshd(cloudSshd)]);
    await stopMountNamespace(cloudMachine);
    rmSync(base, { recursive: true, force: true });
  });

  const jobDone = (jobId: number) =>
    eventually(async () => {
      const job = await ds.getRepository(Job).findOneByOrFail({ id: jobId });
      if (job.state === 'dead') throw new Error(`job ${jobId} dead: ${job.lastError}`);
      return job.state === 'done' ? job : null;
    }, 60_000, `job ${jobId}`);
  /** The install's upstream in d1's live generation ('' while a rebuild swaps it under the reader: a generation pruned between listing and reading). */
  const upstream = () => {
    try {
      const dir = realpathSync(join(base, 'd1/srv/nginx/current'));
      const files = readdirSync(dir, { recursive: true }).map(String).filter((f) => f.startsWith('upstreams/') && f.endsWith('.conf'));
      const name = vhostOf(dir, install.fsName)?.upstream;
      if (!name) return '';
      return files.map((f) => readFileSync(join(dir, f), 'utf8')).find((c) => c.includes(`upstream ${name} {`)) ?? '';
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return '';
      throw error;
    }
  };
  const cloudAccount = async () => {
    const { mariadb } = readTestbed();
    const password = decryptSecret(app.get<EngineConfig>(ENGINE_CONFIG).secretsKey, install.dbPasswordEnc);
    const admin = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: mariadb.adminUser, password: mariadb.adminPassword });
    try {
      const [rows] = await admin.query('SELECT Host FROM mysql.user WHERE User = ? ORDER BY Host', [install.dbUser]);
      return { hosts: (rows as { Host: string }[]).map((r) => r.Host), password };
    } finally {
      await admin.end();
    }
  };

  it('adds the cloud: shared code, home with its own config, crons, database account, then the upstream; the shop answers through both', async () => {
    const { jobId, handler } = await app.get(InstallHandlersService).add(install.id, servers.c1!.id, 2, by);
    expect(handler).toMatchObject({ state: 'adding', poolPort: null });
    await jobDone(jobId);
    const steps = await ds.getRepository(SagaStep).find({ where: { jobId }, order: { stepIndex: 'ASC' } });
    expect(steps.map((s) => [s.stepName, s.state])).toEqual(['php-user', 'database-access', 'shared-code', 'home', 'crons', 'pools', 'activate', 'webserver'].map((n) => [n, 'done']));
    expect((await ds.getRepository(InstallServer).findOneByOrFail({ installId: install.id, serverId: servers.c1!.id })).state).toBe('active');

    const home = join(base, 'c1/srv/home', install.fsName);
    expect(readFileSync(join(home, '.shop-install'), 'utf8')).toContain(`shop-engine install ${install.id}`);
    expect(existsSync(join(base, 'c1/srv/shared_codes/paid-1/releases', repo.revisions[1]!, 'heavymetal/lib'))).toBe(true);
    // The cloud's own config file, rendered for the paths it shares with the dispatcher (nginx passes PHP the script's path there).
    const served = join(base, 'd1/srv/home', install.fsName);
    const config = readFileSync(join(home, 'heavymetal/config.php'), 'utf8');
    expect(config).toContain(`'home' => '${served}'`);
    expect(config).toContain(`'db_host' => '127.0.0.1'`);
    expect(readFileSync(join(base, 'c1/srv/cron.d', `shop-${install.fsName}`), 'utf8')).toContain(`cd ${served} && php heavymetal/cron.php`);
    expect((await cloudAccount()).hosts).toContain('127.0.106.82');
    // The upstream names both handlers with their weights.
    const text = upstream();
    expect(text).toContain('server 127.0.106.81:9000 weight=1');
    expect(text).toContain('server 127.0.106.82:9000 weight=2');
    for (let i = 0; i < 6; i++) expect(await fetchSite('127.0.106.91', 'www.handlers.test', '/')).toMatchObject({ status: 200, body: 'shop www.handlers.test: Welcome; enjoy the shop\n' });
    const audit = (await ds.getRepository(AuditEvent).find({ order: { id: 'ASC' } })).map((a) => a.action);
    expect(audit).toEqual(expect.arrayContaining(['install.handler.add', 'install.handler.added']));
  });

  it('weights and clouds only reach the upstream: the master becomes a backup', async () => {
    const handlers = app.get(InstallHandlersService);
    await handlers.cloudsOnly(install.id, true, by);
    await eventually(async () => upstream().includes('server 127.0.106.81:9000 down') || upstream().includes('127.0.106.81:9000 backup'), 30_000, 'the clouds-only upstream');
    await handlers.cloudsOnly(install.id, false, by);
    await eventually(async () => upstream().includes('server 127.0.106.81:9000 weight=1'), 30_000, 'the master back in rotation');
  });

  it('removes the cloud: out of the upstream first, then crons, home and database account; the shop keeps answering', async () => {
    const { jobId } = await app.get(InstallHandlersService).remove(install.id, servers.c1!.id, by);
    await jobDone(jobId);
    expect(await ds.getRepository(InstallServer).findOneBy({ installId: install.id, serverId: servers.c1!.id })).toBeNull();
    // With the loader's backends from active rows only (the lead's change), the cloud left before its files did; here at least after.
    await eventually(async () => !upstream().includes('127.0.106.82'), 30_000, 'the upstream without the cloud');
    expect(existsSync(join(base, 'c1/srv/home', install.fsName))).toBe(false);
    expect(existsSync(join(base, 'c1/srv/cron.d', `shop-${install.fsName}`))).toBe(false);
    expect((await cloudAccount()).hosts).not.toContain('127.0.106.82');
    expect(await app.get(TenantDatabases).userExists(servers.db!, install.dbUser)).toBe(true);
    expect(await fetchSite('127.0.106.91', 'www.handlers.test', '/')).toMatchObject({ status: 200 });
  });

  it('undoes an addition that cannot finish: a home there that is not the install\'s stays, everything else goes', async () => {
    const foreign = join(base, 'c1/srv/home', install.fsName);
    mkdirSync(foreign, { recursive: true });
    writeFileSync(join(foreign, 'keep.txt'), 'not the engine\'s\n');
    const { jobId } = await app.get(InstallHandlersService).add(install.id, servers.c1!.id, undefined, by);
    await eventually(async () => ((await ds.getRepository(Job).findOneByOrFail({ id: jobId })).state === 'dead' ? true : null), 60_000, 'the failed addition');
    const steps = await ds.getRepository(SagaStep).find({ where: { jobId }, order: { stepIndex: 'ASC' } });
    expect(steps.find((s) => s.stepName === 'home')).toMatchObject({ state: 'compensated' });
    expect(steps.find((s) => s.stepName === 'home')!.error).toContain('was not created by this install');
    expect(await ds.getRepository(InstallServer).findOneBy({ installId: install.id, serverId: servers.c1!.id })).toBeNull();
    expect(readFileSync(join(foreign, 'keep.txt'), 'utf8')).toBe('not the engine\'s\n');
    expect((await cloudAccount()).hosts).not.toContain('127.0.106.82');
  });
});
