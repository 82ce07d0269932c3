import type { DataSource } from 'typeorm';
import { JobRepository } from '@app/queue';
import { createTestCatalog, openCatalog, TEST_SECRETS_KEY, type TestCatalog } from '../support/catalog.js';
import { cleanEnv, spawnWorker, type WorkerProcess } from '../support/processes-engine.js';
import { eventually, sleep } from '../support/queue-context.js';

/**
 * Workers are real engine processes (ENGINE_ROLES=worker) on a MariaDB
 * catalog, killed and frozen for real. A worker restarted on the killed
 * one's host takes its job back as it starts; a frozen worker's process
 * still runs, so its lease expiry is fast-forwarded in the catalog instead
 * of waited for (the queue benchmark measures real recovery both ways).
 */
describe('queue crash safety with real worker processes', () => {
  let catalog: TestCatalog;
  let db: DataSource;
  let jobs: JobRepository;
  let env: NodeJS.ProcessEnv;
  const workers: WorkerProcess[] = [];

  beforeAll(async () => {
    catalog = await createTestCatalog('mariadb', 'crash');
    db = await openCatalog(catalog);
    jobs = new JobRepository(db);
    env = cleanEnv({ CATALOG_URL: catalog.url, SECRETS_KEY: TEST_SECRETS_KEY, WORKER_POLL_MS: '100', LOG_LEVEL: 'info' });
  });
  afterEach(async () => {
    for (const w of workers.splice(0)) {
      w.child.kill('SIGCONT');
      w.child.kill('SIGKILL');
      await w.exited;
    }
  });
  afterAll(async () => {
    await db?.destroy();
    await catalog?.drop();
  });

  const start = async () => {
    const worker = await spawnWorker(env);
    workers.push(worker);
    return worker;
  };
  const enqueueNoop = async (sleepMs: number, note: string) =>
    (await jobs.enqueue({ kind: 'engine.noop', payload: { sleepMs, note }, maxAttempts: 3 })).job.id;
  const runningUnder = (id: number, owner: string) =>
    eventually(async () => {
      const job = await jobs.findById(id);
      return job?.state === 'running' && job.leaseOwner === owner ? job : null;
    }, 20_000, `job ${id} to run under ${owner}`);
  const fastForwardLease = (id: number) =>
    db.query(`UPDATE jobs SET lease_expires_at = '2000-01-01 00:00:00.000' WHERE id = ?`, [id]);
  const doneJob = (id: number) =>
    eventually(async () => {
      const job = await jobs.findById(id);
      return job?.state === 'done' ? job : null;
    }, 30_000, `job ${id} to be done`);

  it('kill -9 mid-job: a worker restarted on the same host takes it back at once, and it completes exactly once', async () => {
    const a = await start();
    const id = await enqueueNoop(3000, 'killed');
    await runningUnder(id, a.owner);
    a.child.kill('SIGKILL');
    expect(await a.exited).toBe('SIGKILL');

    const b = await start();
    const restarted = Date.now();
    // Nothing fast-forwarded: the lease (15 s) is still running when the job is back.
    const retaken = await runningUnder(id, b.owner);
    expect(Date.now() - restarted).toBeLessThan(3_000);
    // Taken back because its holder's process is gone, not because the lease ran out (a slow start on a loaded machine may take a while).
    expect(b.output()).toContain('took back the jobs of workers of this host whose process is gone');
    expect(retaken.attempts).toBe(2);
    const done = await doneJob(id);
    expect(done).toMatchObject({ attempts: 2, fence: 2, leaseOwner: null, runningKey: null });
    const logs = await jobs.logs(id);
    expect(logs.map((l) => [l.attempt, l.line])).toEqual([[2, 'noop: killed']]);
    expect(b.output()).not.toContain('result discarded');
  });

  it('SIGSTOP past the lease: another worker takes the job; after SIGCONT the first one\'s completion is refused', async () => {
    const a = await start();
    const id = await enqueueNoop(1500, 'frozen');
    const claimedByA = await runningUnder(id, a.owner);
    a.child.kill('SIGSTOP');

    // A process that still runs, frozen or not, is never taken for dead: only its lease's expiry frees the job.
    const b = await start();
    await sleep(1_500);
    expect(await jobs.findById(id)).toMatchObject({ state: 'running', leaseOwner: a.owner, fence: claimedByA.fence });
    await fastForwardLease(id);
    const done = await doneJob(id);
    expect(done.fence).toBe(claimedByA.fence + 1);
    expect(done.attempts).toBe(2);

    a.child.kill('SIGCONT');
    await eventually(async () => /lease was lost|result discarded/.test(a.output()), 20_000, 'the first worker to notice');
    // The job stays as the second worker left it.
    expect(await jobs.findById(id)).toMatchObject({ state: 'done', fence: done.fence, attempts: 2 });
    expect(b.output()).not.toContain('result discarded');
  });
});
