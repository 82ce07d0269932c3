import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { INestApplicationContext, Type } from '@nestjs/common';
import { DataSource, In } from 'typeorm';
import { DatabaseUpdate, DispatcherConfig, FtpAccount, Install, Job, SagaStep, Server, ServerIp, SharedCodeGroup } from '@app/catalog';
import { buildSampleRepository, SAMPLE_MANIFEST, type SampleRepository } from '@app/codebases';
import { HostsModule } from '@app/hosts';
import { INSTALL_BUILD, InstallBuildJob, InstallsModule, InstallsService, type CreateInstallDto, type InstallAcceptedView } from '@app/installs';
import { JobDeferredError, JobRepository, LeaseLostError, type JobContext } from '@app/queue';
import { SagaRunner } from '@app/saga';
import { NGINX_REBUILD, NginxPipeline, NginxRebuilds } from '@app/webserver';
import { SagaModule } from '@app/saga';
import { createTestCatalog, TEST_SECRETS_KEY, type TestCatalog } from '../support/catalog.js';
import { cleanEnv, spawnWorker, type WorkerProcess } from '../support/processes-engine.js';
import { eventually, sleep, startQueueContext } from '../support/queue-context.js';
import { checkoutGroup, testServer } from '../support/server-roots.js';
import { startSshd, stopSshd } from '../support/sshd.js';
import { writeDbOptionsFile } from '../support/tenant-db-server.js';
import { readTestbed, type SshdServer } from '../support/testbed.js';
import { startDispatcherWeb, stopDispatcherWeb, type DispatcherWeb } from '../support/dispatcher-web.js';
import { vhostOf } from '../support/nginx.js';

/**
 * Real worker processes building real installs (two SSH dispatchers,
 * MariaDB), killed with SIGKILL mid-build again and again. Whatever step
 * each build was in, the next worker resumes from the journal and every
 * install ends live, with nothing done twice or left half-made. Lease
 * expiry is fast-forwarded in the catalog rather than waited for.
 */
describe('install builds under kill -9 of their worker', () => {
  let catalog: TestCatalog;
  let app: INestApplicationContext;
  let ds: DataSource;
  let base: string;
  let repo: SampleRepository;
  let second: SshdServer;
  let env: NodeJS.ProcessEnv;
  const workers: WorkerProcess[] = [];
  const web: DispatcherWeb[] = [];

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'install-crash-'));
    chmodSync(base, 0o755);
    [catalog, second, repo] = await Promise.all([createTestCatalog('mariadb', 'install_crash'), startSshd(join(base, 'sshd-2'), '127.0.0.9'), buildSampleRepository(join(base, 'repo'))]);
    app = await startQueueContext(catalog.url, [], null, [InstallsModule.forRoot({ http: false }), HostsModule.forRoot({ http: false }), SagaModule] as unknown as Type[]);
    ds = app.get(DataSource);
    // Each dispatcher runs nginx and php-fpm: an install is live only once the probe has its page through both.
    const dispatcher = async (name: string, hostname: string, sshd: SshdServer, ip: string) => {
      const row = testServer(join(base, name), hostname, ['dispatcher', 'handler'], sshd, { privateIp: ip });
      const started = await startDispatcherWeb(join(base, `web-${name}`), row.nginxConfDir, ip);
      web.push(started);
      return ds.getRepository(Server).save({ ...row, nginxPidFile: started.pidFile });
    };
    const d1 = await dispatcher('d1', 'crash1.example.net', readTestbed().sshd, '127.0.85.200');
    const d2 = await dispatcher('d2', 'crash2.example.net', second, '127.0.86.200');
    await ds.getRepository(Server).save(testServer(join(base, 'db'), 'crashdb.example.net', ['database'], null, { dbOptionsFile: writeDbOptionsFile(base), privateIp: '127.0.0.1' }));
    for (const [server, prefix] of [[d1, '127.0.85'], [d2, '127.0.86']] as const) {
      for (let i = 1; i <= 20; i++) await ds.getRepository(ServerIp).save({ serverId: server.id, ip: `${prefix}.${i}`, kind: 'dedicated', failoverGroup: null, activeServerId: null });
    }
    for (const server of [d1, d2]) checkoutGroup(repo.path, server.sharedCodeRoot, 'crash', repo.revisions[1]!);
    await ds.getRepository(SharedCodeGroup).save({
      name: 'crash', tier: 'paid', repoUrl: repo.path, revision: repo.revisions[1]!, path: join(base, 'd1/srv/shared_codes/crash'), masterServerId: d1.id,
      installLimit: 20, installCount: 0, pinned: false, manifest: JSON.parse(JSON.stringify(SAMPLE_MANIFEST)), state: 'ready',
    });
    env = cleanEnv({ CATALOG_URL: catalog.url, SECRETS_KEY: TEST_SECRETS_KEY, WORKER_POLL_MS: '100', WORKER_CONCURRENCY: '3', VAR_DIR: join(base, 'var'), LOG_LEVEL: 'info' });
  });
  afterAll(async () => {
    for (const w of workers) {
      w.child.kill('SIGKILL');
      await w.exited;
    }
    await app?.close();
    await catalog?.drop();
    await Promise.all(web.map((w) => stopDispatcherWeb(w)));
    if (second) await stopSshd(second);
    rmSync(base, { recursive: true, force: true });
  });

  it('resumes a build whose worker died right after the effect of each step, in turn', async () => {
    const installs = app.get(InstallsService);
    const stepNames = app.get(InstallBuildJob).definition(null).steps.map((s) => s.name);
    const jobs = new JobRepository(ds);
    const crashed: { step: string; installId: number; jobId: number }[] = [];
    for (const [k, step] of stepNames.entries()) {
      const { view } = await installs.order({ orderRef: `STEP-${k}`, customerEmail: `s${k}@example.com`, license: 'paid', sites: [{ hostname: `step${k}-shop.example.org` }] } as CreateInstallDto);
      // This process plays the worker: it claims the job and runs the saga until step k's effect is done...
      // (Past the webserver step, a queued nginx rebuild may come first: claimed too, and taken over later like the rest.)
      let [claimed] = await jobs.claim('doomed-worker', 1, () => INSTALL_BUILD.options.leaseMs);
      while (claimed && claimed.kind !== INSTALL_BUILD.name) [claimed] = await jobs.claim('doomed-worker', 1, () => INSTALL_BUILD.options.leaseMs);
      expect(claimed!.id).toBe(view.jobId);
      const definition = app.get(InstallBuildJob).definition(claimed!.id);
      const steps = definition.steps.map((s, i) =>
        i === k
          ? {
              ...s,
              execute: async (c: Parameters<typeof s.execute>[0], io: Parameters<typeof s.execute>[1]) => {
                await s.execute(c, io);
                // ...and dies there: nothing after the effect happens, not even the journal's "done".
                throw new LeaseLostError(claimed!.id);
              },
            }
          : s,
      );
      if (k > stepNames.indexOf('webserver')) {
        // A rebuild ran meanwhile (no worker here to run the one it asks for): its vhost is live, so it gets past the step.
        for (const server of (await ds.getRepository(Server).find()).filter((s) => s.roles.includes('dispatcher'))) await app.get(NginxPipeline).apply(server);
      }
      const context: JobContext = { jobId: claimed!.id, attempt: 1, maxAttempts: claimed!.maxAttempts, fence: claimed!.fence, signal: new AbortController().signal, log: () => undefined, error: () => undefined };
      // The webserver step's effect is its rebuild request; no worker runs here, so it ends waiting (deferred), its row still running.
      await expect(app.get(SagaRunner).run({ ...definition, steps }, { installId: view.installId }, context)).rejects.toBeInstanceOf(step === 'webserver' ? JobDeferredError : LeaseLostError);
      crashed.push({ step, installId: view.installId, jobId: claimed!.id });
    }
    const running = await ds.getRepository(SagaStep).find({ where: { jobId: In(crashed.map((c) => c.jobId)), state: 'running' } });
    expect(running.map((r) => r.stepName).sort()).toEqual([...stepNames].sort());
    // Its lease runs out (fast-forwarded); a real worker process takes every build over.
    await ds.query(`UPDATE jobs SET fence = fence + 1, lease_expires_at = '2000-01-01 00:00:00.000' WHERE state = 'running'`);
    const worker = await spawnWorker(env);
    workers.push(worker);
    const settledRows = await eventually(async () => {
      const rows = await ds.getRepository(Install).find({ where: { id: In(crashed.map((c) => c.installId)) } });
      return rows.every((r) => r.status === 'live' || r.status === 'failed') ? rows : null;
    }, 120_000, 'every crashed build to settle');
    expect(settledRows.map((r) => `${r.orderRef}:${r.status}:${r.statusReason}`).sort()).toEqual(stepNames.map((_, k) => `STEP-${k}:live:null`).sort());
    for (const c of crashed) {
      const journal = await ds.getRepository(SagaStep).find({ where: { jobId: c.jobId }, order: { stepIndex: 'ASC' } });
      expect(journal.map((r) => `${r.stepName}:${r.state}`)).toEqual(stepNames.map((n) => `${n}:done`));
      // The step the worker died in ran again; the others once (the webserver step also runs again after each wait for its rebuild).
      expect(journal.filter((r) => r.stepName !== 'webserver').map((r) => r.attempt)).toEqual(stepNames.filter((n) => n !== 'webserver').map((n) => (n === c.step ? 2 : 1)));
      expect(journal.find((r) => r.stepName === 'webserver')!.attempt).toBeGreaterThanOrEqual(c.step === 'webserver' ? 2 : 1);
      const install = settledRows.find((r) => r.id === c.installId)!;
      expect((await ds.getRepository(DatabaseUpdate).find({ where: { installId: install.id } })).map((u) => u.file).sort()).toEqual(['0001_base.sql', '0002_orders.sql', 'template:heavymetal/sql/templates/install.sql']);
      expect(await ds.getRepository(FtpAccount).count({ where: { installId: install.id } })).toBe(1);
      for (const server of ['d1', 'd2']) {
        expect(vhostOf(join(base, server, 'srv/nginx/current'), install.fsName)).not.toBeNull();
        expect(existsSync(join(base, server, 'srv/home', install.fsName, 'heavymetal/config.php'))).toBe(true);
      }
    }
    await eventually(async () => {
      const rows = await ds.getRepository(Job).find({ where: { id: In(crashed.map((c) => c.jobId)) } });
      return rows.every((j) => j.state === 'done');
    }, 30_000, 'the crashed builds\' jobs to close');
    worker.child.kill('SIGTERM');
    await worker.exited;
  }, 240_000);

  it('resumes every build after each kill and ends every install live, nothing done twice', async () => {
    const orders = Array.from({ length: 6 }, (_, i) => ({ orderRef: `CRASH-${i}`, customerEmail: `c${i}@example.com`, license: 'paid', sites: [{ hostname: `crash${i}-shop.example.org` }] }) as CreateInstallDto);
    const accepted: InstallAcceptedView[] = [];
    for (const order of orders) accepted.push((await app.get(InstallsService).order(order)).view);
    const jobIds = accepted.map((a) => a.jobId!);

    // Kill the worker at different points; a dead worker's lease is expired by hand, as time would.
    for (const delayMs of [200, 500, 900, 1400, 2000]) {
      const worker = await spawnWorker(env);
      workers.push(worker);
      await sleep(delayMs);
      worker.child.kill('SIGKILL');
      await worker.exited;
      await ds.query(`UPDATE jobs SET fence = fence + 1, lease_expires_at = '2000-01-01 00:00:00.000' WHERE state = 'running'`);
    }
    const steps = await ds.getRepository(SagaStep).find({ where: { jobId: In(jobIds) } });
    // The kills landed mid-build: some step was started again by a later worker.
    expect(steps.some((s) => s.attempt > 1) || steps.some((s) => s.state === 'running')).toBe(true);

    workers.push(await spawnWorker(env));
    const installs = await eventually(async () => {
      const rows = await ds.getRepository(Install).find({ where: { id: In(accepted.map((a) => a.installId)) } });
      return rows.every((r) => r.status === 'live' || r.status === 'failed') ? rows : null;
    }, 120_000, 'every install to settle');
    expect(installs.map((i) => `${i.orderRef}:${i.status}:${i.statusReason}`).sort()).toEqual(orders.map((o) => `${o.orderRef}:live:null`).sort());
    // The install is live once its last step is done; the job is closed a moment later.
    const jobs = await eventually(async () => {
      const rows = await ds.getRepository(Job).find({ where: { id: In(jobIds) } });
      return rows.every((j) => j.state !== 'running' && j.state !== 'ready') ? rows : null;
    }, 30_000, 'the build jobs to close');
    expect(jobs.map((j) => j.state)).toEqual(jobs.map(() => 'done'));
    const journal = await ds.getRepository(SagaStep).find({ where: { jobId: In(jobIds) } });
    expect(journal.every((s) => s.state === 'done')).toBe(true);
    expect(journal).toHaveLength(6 * app.get(InstallBuildJob).definition(null).steps.length);

    for (const install of installs) {
      const updates = await ds.getRepository(DatabaseUpdate).find({ where: { installId: install.id } });
      expect(updates.map((u) => u.file).sort()).toEqual(['0001_base.sql', '0002_orders.sql', 'template:heavymetal/sql/templates/install.sql']);
      expect(await ds.getRepository(FtpAccount).count({ where: { installId: install.id } })).toBe(1);
      for (const server of ['d1', 'd2']) {
        expect(existsSync(join(base, server, 'srv/home', install.fsName, 'heavymetal/config.php'))).toBe(true);
        expect(existsSync(join(base, server, 'srv/cron.d', `shop-${install.fsName}`))).toBe(true);
      }
    }
    // No half-made files: no temporary files, candidates or test configs anywhere, once the nginx rebuilds are at rest too (a rebuild
    // that reloaded untested prunes the older generations after its reload: the install can be live while that runs). At rest means
    // no rebuild queued or running AND every dispatcher's applied generation caught up with the wanted one: a rebuild whose worker was
    // killed on its last attempt (each kill above costs the queued rebuild one) ends dead, taken back by the reaper with nothing
    // written, after it made the installs live and before its prune; the reconciler (every 10 s on an engine with the cron role: this
    // process plays it) asks for another, which prunes.
    await eventually(
      async () => {
        if ((await ds.getRepository(Job).count({ where: { kind: NGINX_REBUILD.name, state: In(['running', 'ready', 'blocked']) } })) > 0) return false;
        if ((await ds.getRepository(DispatcherConfig).find()).every((c) => c.appliedGeneration >= c.wantedGeneration)) return true;
        await app.get(NginxRebuilds).reconcile();
        return false;
      },
      60_000,
      'the nginx rebuilds to end',
    );
    for (const server of ['d1', 'd2']) {
      // The live generation and the one before it; no staged generation or test config left by a killed worker.
      expect(readdirSync(join(base, server, 'srv/nginx')).filter((f) => !['current', 'generations', 'last-good', 'tests'].includes(f))).toEqual([]);
      // At rest: current, last-good and at most the last-good before it (kept for the reload that replaced it; the next run prunes it). Anything newer was staged by a killed run.
      const liveGen = readlinkSync(join(base, server, 'srv/nginx/current')).replace('generations/', '');
      const lastGood = existsSync(join(base, server, 'srv/nginx/last-good')) ? readlinkSync(join(base, server, 'srv/nginx/last-good')).replace('generations/', '') : '';
      const older = readdirSync(join(base, server, 'srv/nginx/generations')).filter((g) => g !== liveGen && g !== lastGood);
      // More than one: named in the failure with the rebuild jobs and their last output.
      const rebuildLines = async () =>
        (await ds.query(`SELECT l.job_id, l.attempt, l.line FROM job_logs l JOIN jobs j ON j.id = l.job_id WHERE j.kind = ? ORDER BY l.id DESC LIMIT 40`, [NGINX_REBUILD.name]))
          .map((r: { job_id: number; attempt: number; line: string }) => `${r.job_id}/${r.attempt}: ${r.line.slice(0, 120)}`)
          .reverse();
      const rebuildJobs = async () =>
        (await ds.query(`SELECT id, state, attempts, max_attempts, last_error, payload FROM jobs WHERE kind = ? ORDER BY id`, [NGINX_REBUILD.name])).map(
          (j: { id: number; state: string; attempts: number; max_attempts: number; last_error: string | null; payload: unknown }) =>
            `${j.id} ${JSON.stringify(j.payload)} ${j.state} ${j.attempts}/${j.max_attempts} ${(j.last_error ?? '').slice(0, 160)}`,
        );
      expect(older.length <= 1 ? [] : { server, liveGen, lastGood, older, jobs: await rebuildJobs(), rebuilds: await rebuildLines() }).toEqual([]);
      for (const g of older) expect(g < lastGood).toBe(true);
      expect(readdirSync(join(base, server, 'srv/nginx/tests'))).toEqual([]);
      for (const i of installs) expect([i.fsName, vhostOf(join(base, server, 'srv/nginx/current'), i.fsName) !== null]).toEqual([i.fsName, true]);
      const stray = execFileSync('find', [join(base, server, 'srv'), '-name', '.*.tmp-*', '-o', '-name', '*.lnk-*']).toString().trim();
      expect(stray).toBe('');
    }
  }, 240_000);
});
