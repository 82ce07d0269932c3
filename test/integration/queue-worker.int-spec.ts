import { Injectable, type INestApplicationContext } from '@nestjs/common';
import {
  defineJobKind,
  JobHandler,
  JobRepository,
  LeaseLostError,
  NOOP_JOB,
  PermanentJobError,
  QueueService,
  type JobContext,
} from '@app/queue';
import { createTestCatalog, type TestCatalog } from '../support/catalog.js';
import { eventually, sleep, startQueueContext } from '../support/queue-context.js';

const SERIAL = defineJobKind<{ n: number }>('test.serial', { backoff: { baseMs: 10, maxMs: 20 } });
const FLAKY = defineJobKind<{ tag: string; failures: number }>('test.flaky', {
  maxAttempts: 3,
  backoff: { baseMs: 10, maxMs: 20 },
});
const BROKEN = defineJobKind<Record<string, never>>('test.broken', { maxAttempts: 5 });
const HANG = defineJobKind<Record<string, never>>('test.hang', { leaseMs: 600 });

// Shared by the handlers of both worker contexts of this file.
const intervals: { n: number; start: number; end: number }[] = [];
const failuresSoFar = new Map<string, number>();
const hangAborts: unknown[] = [];

@Injectable()
class TestHandlers {
  @JobHandler(SERIAL)
  async serial(payload: { n: number }, context: JobContext): Promise<void> {
    const start = Date.now();
    await sleep(10);
    context.log(`serial ${payload.n}`);
    intervals.push({ n: payload.n, start, end: Date.now() });
  }

  @JobHandler(FLAKY)
  async flaky(payload: { tag: string; failures: number }, context: JobContext): Promise<void> {
    const seen = (failuresSoFar.get(payload.tag) ?? 0) + 1;
    failuresSoFar.set(payload.tag, seen);
    context.log(`attempt ${context.attempt}`);
    if (seen <= payload.failures) throw new Error(`transient failure ${seen}`);
  }

  @JobHandler(BROKEN)
  async broken(): Promise<void> {
    throw new PermanentJobError('the payload names a server that does not exist');
  }

  @JobHandler(HANG)
  async hang(_payload: object, context: JobContext): Promise<void> {
    await new Promise<void>((resolve) =>
      context.signal.addEventListener(
        'abort',
        () => {
          hangAborts.push(context.signal.reason);
          resolve();
        },
        { once: true },
      ),
    );
  }
}

describe('queue workers on MariaDB', () => {
  let catalog: TestCatalog;
  let workers: INestApplicationContext[];
  let queue: QueueService;
  let jobs: JobRepository;

  beforeAll(async () => {
    catalog = await createTestCatalog('mariadb', 'worker');
    workers = [];
    workers.push(await startQueueContext(catalog.url, [TestHandlers]));
    workers.push(await startQueueContext(catalog.url, [TestHandlers]));
    queue = workers[0]!.get(QueueService);
    jobs = workers[0]!.get(JobRepository);
  });
  afterAll(async () => {
    for (const w of workers ?? []) await w.close();
    await catalog?.drop();
  });

  const finished = (id: number) =>
    eventually(async () => {
      const job = await jobs.findById(id);
      return job && ['done', 'dead', 'cancelled'].includes(job.state) ? job : null;
    }, 30_000, `job ${id} to finish`);

  it('runs 50 jobs on one resource key one at a time across two workers', async () => {
    const ids: number[] = [];
    for (let n = 0; n < 50; n++) ids.push((await queue.enqueue(SERIAL, { n }, { resourceKey: 'install:42' })).job.id);
    for (const id of ids) expect((await finished(id)).state).toBe('done');
    expect(intervals).toHaveLength(50);
    const sorted = [...intervals].sort((a, b) => a.start - b.start);
    for (let i = 1; i < sorted.length; i++) expect(sorted[i]!.start).toBeGreaterThanOrEqual(sorted[i - 1]!.end);
  });

  it('retries a failing job with backoff until it succeeds, keeping every attempt\'s output', async () => {
    const { job } = await queue.enqueue(FLAKY, { tag: 'twice', failures: 2 });
    const done = await finished(job.id);
    expect(done).toMatchObject({ state: 'done', attempts: 3, lastError: null });
    const lines = (await jobs.logs(job.id)).map((l) => `${l.attempt}:${l.level}:${l.line}`);
    expect(lines).toEqual([
      '1:info:attempt 1',
      '1:error:Error: transient failure 1',
      '2:info:attempt 2',
      '2:error:Error: transient failure 2',
      '3:info:attempt 3',
    ]);
  });

  it('ends a job that keeps failing dead after its attempts, with the error', async () => {
    const { job } = await queue.enqueue(FLAKY, { tag: 'always', failures: 99 });
    const dead = await finished(job.id);
    expect(dead).toMatchObject({ state: 'dead', attempts: 3 });
    expect(dead.lastError).toBe('Error: transient failure 3 (attempt 3 of 3)');
  });

  it('sends a permanent error straight to dead', async () => {
    const { job } = await queue.enqueue(BROKEN, {});
    const dead = await finished(job.id);
    expect(dead).toMatchObject({ state: 'dead', attempts: 1 });
    expect(dead.lastError).toContain('PermanentJobError: the payload names a server that does not exist');
  });

  it('aborts a running handler whose job is cancelled, and never completes it', async () => {
    const { job } = await queue.enqueue(HANG, {});
    await eventually(async () => (await jobs.findById(job.id))?.state === 'running', 10_000, 'the job to run');
    expect(await jobs.cancel(job.id, 'operator cancelled')).toBe(true);
    await eventually(async () => hangAborts.length > 0, 5_000, 'the handler to be aborted');
    expect(hangAborts[0]).toBeInstanceOf(LeaseLostError);
    await sleep(300);
    expect(await jobs.findById(job.id)).toMatchObject({ state: 'cancelled', lastError: 'operator cancelled' });
  });

  it('runs the built-in noop job', async () => {
    const { job } = await queue.enqueue(NOOP_JOB, { note: 'probe' });
    expect((await finished(job.id)).state).toBe('done');
    expect((await jobs.logs(job.id)).map((l) => l.line)).toEqual(['noop: probe']);
  });
});

describe('a queue worker at a long poll interval', () => {
  // A catalog of its own: no other worker here claims its jobs.
  let catalog: TestCatalog;
  let worker: INestApplicationContext;
  let producer: INestApplicationContext;
  let jobs: JobRepository;

  beforeAll(async () => {
    catalog = await createTestCatalog('mariadb', 'idlepoll');
    worker = await startQueueContext(catalog.url, [TestHandlers], { concurrency: 1, pollMs: 5_000, reapEveryMs: 60_000 });
    // Another process's producer: its enqueues cannot wake the worker, which learns of them by polling.
    producer = await startQueueContext(catalog.url, [], null);
    jobs = producer.get(JobRepository);
  });
  afterAll(async () => {
    await worker?.close();
    await producer?.close();
    await catalog?.drop();
  });

  const finished = (id: number, timeoutMs: number) =>
    eventually(async () => (await jobs.findById(id))?.state === 'done', timeoutMs, `job ${id} to be done`);

  it('looks again soon after a busy spell: a job enqueued elsewhere just after is claimed well before the next poll', async () => {
    const first = await jobs.enqueue({ kind: NOOP_JOB.name, payload: {}, maxAttempts: 3 });
    await finished(first.job.id, 10_000);
    await sleep(300);
    const enqueuedAt = Date.now();
    const second = await jobs.enqueue({ kind: NOOP_JOB.name, payload: {}, maxAttempts: 3 });
    await finished(second.job.id, 10_000);
    // The poll interval is 5 s (3.75 s at the soonest); after work the idle pauses start at 50 ms and double.
    expect(Date.now() - enqueuedAt).toBeLessThan(2_000);
  });
});
