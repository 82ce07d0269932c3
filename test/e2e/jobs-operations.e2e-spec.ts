import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiTokensService } from '@app/auth';
import { AuditEventRepository } from '@app/catalog';
import { DataSource } from 'typeorm';
import { JobRepository, NOOP_JOB, QueueService } from '@app/queue';
import { startEngine, type RunningEngine } from '../../apps/engine/src/start-engine.js';
import { createTestCatalog, TEST_SECRETS_KEY, testEngineConfig, type TestCatalog } from '../support/catalog.js';
import { cleanEnv, runCli } from '../support/processes-engine.js';
import { eventually } from '../support/queue-context.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = async (res: Response): Promise<any> => res.json();

/** Operations staff's view of the queue: the admin API and the snippets, with a real worker running. */
describe('queue operations (API and snippets) on MariaDB', () => {
  let catalog: TestCatalog;
  let engine: RunningEngine;
  let admin: string;
  let support: string;
  let queue: QueueService;
  let jobs: JobRepository;
  let cwd: string;

  beforeAll(async () => {
    catalog = await createTestCatalog('mariadb', 'jobsops');
    engine = await startEngine(testEngineConfig(catalog.url, { WORKER_POLL_MS: '50' }));
    const tokens = engine.app.get(ApiTokensService);
    admin = (await tokens.issue('ops', ['admin'], { actor: 'test', via: 'cli' })).token;
    support = (await tokens.issue('desk', ['support'], { actor: 'test', via: 'cli' })).token;
    queue = engine.app.get(QueueService);
    jobs = engine.app.get(JobRepository);
    cwd = mkdtempSync(join(tmpdir(), 'jobsops-'));
  });
  afterAll(async () => {
    await engine?.close();
    await catalog?.drop();
    rmSync(cwd, { recursive: true, force: true });
  });

  const api = (method: string, path: string, token = admin) =>
    fetch(`${engine.url}${path}`, { method, headers: { authorization: `Bearer ${token}` } });
  const settled = (id: number, state = 'done') =>
    eventually(async () => ((await jobs.findById(id))?.state === state ? true : null), 20_000, `job ${id} ${state}`);

  it('lists, shows, tails, counts, reruns, refuses and removes jobs', async () => {
    const { job } = await queue.enqueue(NOOP_JOB, { note: 'api' });
    await settled(job.id);

    const list = await json(await api('GET', '/v1/jobs?state=done&kind=engine.noop'));
    expect(list.map((j: { id: number }) => j.id)).toContain(job.id);
    expect(await json(await api('GET', `/v1/jobs/${job.id}`))).toMatchObject({ id: job.id, state: 'done', attempts: 1 });
    const output = await json(await api('GET', `/v1/jobs/${job.id}/output`));
    expect(output.map((l: { line: string }) => l.line)).toEqual(['noop: api']);
    expect(await json(await api('GET', `/v1/jobs/${job.id}/output?after=${output[0].id}`))).toEqual([]);
    const stats = await json(await api('GET', '/v1/jobs/stats'));
    expect(stats.byState.done).toBeGreaterThanOrEqual(1);
    expect(stats.oldestReadyAgeSeconds).toBeGreaterThanOrEqual(0);

    const retried = await api('POST', `/v1/jobs/${job.id}/retry`);
    expect(retried.status).toBe(200);
    expect(await json(retried)).toMatchObject({ id: job.id, lastError: null });
    await settled(job.id);
    expect((await json(await api('GET', `/v1/jobs/${job.id}/output`))).length).toBe(2);

    const cancel = await api('POST', `/v1/jobs/${job.id}/cancel`);
    expect(cancel.status).toBe(409);
    expect(await json(cancel)).toMatchObject({ code: 'JOB_NOT_CANCELLABLE' });

    const events = await engine.app.get(AuditEventRepository).latest(10);
    expect(events.find((e) => e.action === 'job.retry' && e.targetId === String(job.id))).toMatchObject({ actor: 'token:ops', via: 'api' });

    expect((await api('DELETE', `/v1/jobs/${job.id}`)).status).toBe(204);
    expect((await api('GET', `/v1/jobs/${job.id}`)).status).toBe(404);
  });

  it('reports jobs that need an operator on /health (degraded, still 200)', async () => {
    const before = await json(await api('GET', '/health'));
    expect(before.info.queue).toMatchObject({ status: 'up', needsAttention: 0 });
    const { job } = await jobs.enqueue({ kind: 'legacy.saga', payload: {}, maxAttempts: 1 });
    // As the worker leaves a saga whose compensation failed.
    await engine.app
      .get(DataSource)
      .query(`UPDATE jobs SET state = 'dead', last_error = ? WHERE id = ?`, ['needs attention: SagaNeedsAttention: x: compensating step y failed', job.id]);
    const res = await api('GET', '/health');
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body.info.queue ?? body.details.queue).toMatchObject({ status: 'degraded', needsAttention: 1, jobs: `${job.id} (legacy.saga)` });
    await api('DELETE', `/v1/jobs/${job.id}`);
  });

  it('validates filters and requires the admin scope', async () => {
    const bad = await api('GET', '/v1/jobs?state=exploded&limit=9999');
    expect(bad.status).toBe(400);
    expect((await json(bad)).details.fields.map((f: { field: string }) => f.field).sort()).toEqual(['limit', 'state']);
    expect((await api('GET', '/v1/jobs', support)).status).toBe(403);
    expect((await api('GET', '/v1/jobs/abc')).status).toBe(400);
  });

  it('rerun-queue-item reruns a job and streams its output to the terminal and a log file', async () => {
    const env = cleanEnv({ CATALOG_URL: catalog.url, SECRETS_KEY: TEST_SECRETS_KEY, LOG_LEVEL: 'warn', VAR_DIR: join(cwd, 'var') });
    const { job } = await queue.enqueue(NOOP_JOB, { note: 'rerun me' });
    await settled(job.id);
    const logFile = join(cwd, 'rerun.log');
    const rerun = await runCli(['rerun-queue-item', String(job.id), '--log-file', logFile], cwd, env);
    expect(rerun.code).toBe(0);
    expect(rerun.stdout).toContain(`job ${job.id} (engine.noop) queued again`);
    expect(rerun.stdout).toContain('[attempt 1] noop: rerun me');
    expect(rerun.stdout).toContain(`job ${job.id} done after 1 attempt(s)`);
    expect(readFileSync(logFile, 'utf8')).toBe(rerun.stdout);

    // A job no handler knows ends dead: the snippet says so and exits 1.
    const { job: orphan } = await jobs.enqueue({ kind: 'legacy.gone', payload: {}, maxAttempts: 1 });
    await settled(orphan.id, 'dead');
    const failed = await runCli(['rerun-queue-item', String(orphan.id)], cwd, env);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toContain('no handler for job kind "legacy.gone"');
    expect(failed.stderr).toContain(`job ${orphan.id} ended dead`);
  });

  it('lists, shows and counts jobs from the snippets, and refuses bad ids', async () => {
    const env = cleanEnv({ CATALOG_URL: catalog.url, SECRETS_KEY: TEST_SECRETS_KEY, LOG_LEVEL: 'warn' });
    const list = await runCli(['jobs:list', '--state', 'dead'], cwd, env);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/legacy\.gone\s+dead\s+1\/1/);
    const stats = await runCli(['queue:stats'], cwd, env);
    expect(stats.stdout).toMatch(/dead\s+1/);
    expect((await runCli(['jobs:show', '1; rm -rf /'], cwd, env)).code).toBe(1);
    const missing = await runCli(['jobs:retry', '999999'], cwd, env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('Job 999999 does not exist');
    expect((await runCli(['jobs:list', '--state', 'nope'], cwd, env)).code).not.toBe(0);
  }, 120_000);
});
