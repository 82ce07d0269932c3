import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { Injectable, type INestApplicationContext } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import {
  currentProcessPlace,
  defineJobKind,
  formatLeaseOwner,
  JobHandler,
  JobRepository,
  MAX_LEASE_MS,
  type JobContext,
} from '@app/queue';
import { createTestCatalog, openCatalog, type TestCatalog } from '../support/catalog.js';
import { eventually, sleep, startQueueContext } from '../support/queue-context.js';

const STEP = defineJobKind<{ name: string }>('test.reclaim-step', { maxAttempts: 3 });
const LONG = defineJobKind<{ ms: number }>('test.reclaim-long', { leaseMs: 1_500 });

const ran: string[] = [];

@Injectable()
class ReclaimHandlers {
  @JobHandler(STEP)
  async step(payload: { name: string }, context: JobContext): Promise<void> {
    ran.push(payload.name);
    context.log(`step ${payload.name}`);
  }

  @JobHandler(LONG)
  async long(payload: { ms: number }, context: JobContext): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(resolve, payload.ms);
      context.signal.addEventListener('abort', () => {
        clearTimeout(timer);
        reject(context.signal.reason as Error);
      }, { once: true });
    });
  }
}

/**
 * Jobs of dead holders taken back by real workers on MariaDB: at once for a
 * holder of this host whose process is gone, by lease expiry for anyone
 * else; a job taken back keeps its place in the queue.
 */
describe('queue workers take back the jobs of dead holders', () => {
  let catalog: TestCatalog;
  let db: DataSource;
  let jobs: JobRepository;
  let sleeper: ChildProcess;
  let deadPid: number;
  const workers: INestApplicationContext[] = [];
  const here = currentProcessPlace();

  beforeAll(async () => {
    catalog = await createTestCatalog('mariadb', 'reclaim');
    db = await openCatalog(catalog);
    jobs = new JobRepository(db);
    // A pid that existed on this host and is gone (its process exited and was waited for).
    deadPid = spawnSync('true').pid!;
    sleeper = spawn('sleep', ['600'], { stdio: 'ignore' });
  });
  afterEach(async () => {
    for (const w of workers.splice(0)) await w.close();
    await db.query('DELETE FROM jobs');
    ran.splice(0);
  });
  afterAll(async () => {
    sleeper?.kill('SIGKILL');
    await db?.destroy();
    await catalog?.drop();
  });

  const startWorker = async (options: { concurrency?: number; reapEveryMs?: number } = {}) => {
    const worker = await startQueueContext(catalog.url, [ReclaimHandlers], {
      concurrency: options.concurrency ?? 4,
      pollMs: 50,
      reapEveryMs: options.reapEveryMs ?? 60_000,
    });
    workers.push(worker);
    return worker;
  };
  const enqueueStep = async (name: string, over: { maxAttempts?: number } = {}) =>
    (await jobs.enqueue({ kind: STEP.name, payload: { name }, maxAttempts: over.maxAttempts ?? 3 })).job.id;
  /** Claims the oldest ready job under `owner`, as that owner's worker would, with the kinds' real lease. */
  const claimAs = async (owner: string, id: number) => {
    const [claimed] = await jobs.claim(owner, 1, () => MAX_LEASE_MS);
    expect(claimed?.id).toBe(id);
    return (await jobs.findById(id))!;
  };
  const finished = (id: number, timeoutMs = 10_000) =>
    eventually(async () => {
      const job = await jobs.findById(id);
      return job && ['done', 'dead'].includes(job.state) ? job : null;
    }, timeoutMs, `job ${id} to finish`);

  it('a starting worker takes back at once the jobs of dead processes of its host, well before their leases expire', async () => {
    const gone = formatLeaseOwner({ ...here, pid: deadPid }, 'dead01');
    // The pid of this very process, but not one of its workers: a predecessor that had the same pid.
    const predecessor = formatLeaseOwner(here, 'dead02');
    const a = await enqueueStep('of a dead process');
    const held = await claimAs(gone, a);
    const b = await enqueueStep('of a predecessor with this pid');
    await claimAs(predecessor, b);
    const c = await enqueueStep('out of attempts', { maxAttempts: 1 });
    await claimAs(gone, c);

    // No periodic reap in this test: only the one the worker does as it starts.
    await startWorker();
    const doneA = await finished(a);
    expect(doneA).toMatchObject({ state: 'done', attempts: 2, fence: held.fence + 1 });
    // Taken back before its 15 s lease would have let anyone else have it.
    expect(doneA.finishedAt!.getTime()).toBeLessThan(held.leaseExpiresAt!.getTime() - 5_000);
    expect((await finished(b)).state).toBe('done');
    const dead = await finished(c);
    expect(dead.state).toBe('dead');
    expect(dead.lastError).toContain(`worker ${gone} is gone`);
    expect(dead.lastError).toContain('no attempts left');
    expect(ran.sort()).toEqual(['of a dead process', 'of a predecessor with this pid']);
  });

  it('leaves alone, until their leases expire, the jobs of a live process of its host and of other hosts', async () => {
    const owners = {
      live: formatLeaseOwner({ ...here, pid: sleeper.pid! }, 'live01'),
      otherHost: formatLeaseOwner({ ...here, host: 'another-host', pid: deadPid }, 'other1'),
      otherSpace: formatLeaseOwner({ ...here, space: 'ffffffffffff', pid: deadPid }, 'other2'),
      legacy: `${here.host}:${deadPid}:abcdef`,
    };
    const held = new Map<string, { id: number; fence: number }>();
    for (const [name, owner] of Object.entries(owners)) {
      const id = await enqueueStep(name);
      held.set(owner, { id, fence: (await claimAs(owner, id)).fence });
    }
    await startWorker({ reapEveryMs: 200 });
    await sleep(2_000);
    for (const [owner, { id, fence }] of held) {
      expect(await jobs.findById(id)).toMatchObject({ state: 'running', leaseOwner: owner, fence });
    }
    expect(ran).toEqual([]);

    // Their leases expire: then they are taken back, by anyone.
    await db.query(`UPDATE jobs SET lease_expires_at = '2000-01-01 00:00:00.000' WHERE state = 'running'`);
    for (const { id } of held.values()) expect((await finished(id)).state).toBe('done');
  });

  it('a running worker\'s reaper takes back the jobs of a holder of its host that died, without waiting for the lease', async () => {
    await startWorker({ reapEveryMs: 300 });
    const gone = formatLeaseOwner({ ...here, pid: deadPid }, 'dead03');
    // Not due, so that the running worker cannot claim it first; then held as a claim holds a job.
    const { job } = await jobs.enqueue({ kind: STEP.name, payload: { name: 'died while running' }, maxAttempts: 3, delayMs: 600_000 });
    const id = job.id;
    const started = Date.now();
    const held: { affectedRows: number } = await db.query(
      `UPDATE jobs SET state = 'running', run_after = UTC_TIMESTAMP(3), lease_owner = ?,
         lease_expires_at = TIMESTAMPADD(SECOND, 15, UTC_TIMESTAMP(3)), fence = fence + 1, attempts = attempts + 1,
         started_at = UTC_TIMESTAMP(3)
       WHERE id = ? AND state = 'ready'`,
      [gone, id],
    );
    // Held by the dead one (read back, the reaper may already have taken it: it looks every 300 ms, which is the point).
    expect(held.affectedRows).toBe(1);
    const done = await finished(id);
    expect(done).toMatchObject({ state: 'done', attempts: 2 });
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('a job taken back from a dead holder keeps its place: it runs before the jobs queued after it', async () => {
    const gone = formatLeaseOwner({ ...here, pid: deadPid }, 'dead04');
    const first = await enqueueStep('first');
    await claimAs(gone, first);
    await enqueueStep('second');
    await enqueueStep('third');
    await startWorker({ concurrency: 1 });
    await eventually(async () => ran.length === 3, 10_000, 'the three jobs to run');
    expect(ran).toEqual(['first', 'second', 'third']);
    expect(await jobs.findById(first)).toMatchObject({ state: 'done', attempts: 2 });
  });

  it('a job that runs for many lease lengths keeps its lease through the heartbeat', async () => {
    await startWorker({ reapEveryMs: 100 });
    await startWorker({ reapEveryMs: 100 });
    const { job } = await jobs.enqueue({ kind: LONG.name, payload: { ms: 7_500 }, maxAttempts: 3 });
    const done = await finished(job.id);
    expect(done).toMatchObject({ state: 'done', attempts: 1, fence: 1 });
  });
});
