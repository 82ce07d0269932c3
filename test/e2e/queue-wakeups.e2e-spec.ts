import { createSocket } from 'node:dgram';
import type { INestApplicationContext } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import { QueueListener } from '@app/catalog';
import { JobRepository, NOOP_JOB, QueueService } from '@app/queue';
import { createTestCatalog, openCatalog, TEST_SECRETS_KEY, type TestCatalog } from '../support/catalog.js';
import { cleanEnv, spawnWorker, type WorkerProcess } from '../support/processes-engine.js';
import { eventually, sleep, startQueueContext } from '../support/queue-context.js';

/**
 * A real engine worker process (ENGINE_ROLES=worker) at a 10 s poll, and a
 * producer in this process (as the API is another process): a job the
 * producer enqueues is claimed at once, through the worker's wake-up
 * address (WORKER_WAKE_ADDRESS, 127.0.0.1 by default), not at the poll.
 */
describe('queue wake-ups across processes (a real worker process, MariaDB)', () => {
  let catalog: TestCatalog;
  let db: DataSource;
  let producer: INestApplicationContext;
  let queue: QueueService;
  let jobs: JobRepository;
  const workers: WorkerProcess[] = [];

  beforeAll(async () => {
    catalog = await createTestCatalog('mariadb', 'wakeups');
    db = await openCatalog(catalog);
    producer = await startQueueContext(catalog.url, [], null);
    queue = producer.get(QueueService);
    jobs = producer.get(JobRepository);
  });
  afterEach(async () => {
    for (const w of workers.splice(0)) {
      w.child.kill('SIGKILL');
      await w.exited;
    }
  });
  afterAll(async () => {
    await producer?.close();
    await db?.destroy();
    await catalog?.drop();
  });

  const start = async (extra: Record<string, string> = {}) => {
    const worker = await spawnWorker(cleanEnv({ CATALOG_URL: catalog.url, SECRETS_KEY: TEST_SECRETS_KEY, WORKER_POLL_MS: '10000', LOG_LEVEL: 'info', ...extra }));
    workers.push(worker);
    return worker;
  };
  const done = (id: number, timeoutMs: number) => eventually(async () => (await jobs.findById(id))?.state === 'done', timeoutMs, `job ${id} to be done`);

  it('claims a job another process enqueued at once, not at its next poll', async () => {
    const worker = await start();
    // Its address is in the catalog once it runs.
    const row = await db.getRepository(QueueListener).findOneByOrFail({ owner: worker.owner });
    expect(row).toMatchObject({ host: '127.0.0.1', port: expect.any(Number) });
    expect(worker.output()).toContain(`takes wake-ups on 127.0.0.1:${row.port}`);

    // Its first claim found nothing: it sleeps the poll, 10 s (7.5 s at the soonest).
    await sleep(500);
    const enqueuedAt = Date.now();
    const { job } = await queue.enqueue(NOOP_JOB, { note: 'woken' });
    await done(job.id, 5_000);
    expect(Date.now() - enqueuedAt).toBeLessThan(1_500);

    // A stopped worker removes its address.
    worker.child.kill('SIGTERM');
    await worker.exited;
    expect(await db.getRepository(QueueListener).countBy({ owner: worker.owner })).toBe(0);
  }, 60_000);

  it('waits for the poll without a wake-up, ignores datagrams that are not one, and takes none with WORKER_WAKE_ADDRESS=off', async () => {
    const quiet = await start({ WORKER_WAKE_ADDRESS: 'off' });
    expect(await db.getRepository(QueueListener).countBy({ owner: quiet.owner })).toBe(0);
    quiet.child.kill('SIGKILL');
    await quiet.exited;
    workers.splice(0);

    const worker = await start();
    const row = await db.getRepository(QueueListener).findOneByOrFail({ owner: worker.owner });
    await sleep(500);
    // Enqueued without a wake-up (no nudge), and a stray datagram: the worker has not seen the job 2 s later.
    const id = (await jobs.enqueue({ kind: NOOP_JOB.name, payload: { note: 'silent' }, maxAttempts: 3 })).job.id;
    const socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.send(Buffer.from('hello'), row.port, '127.0.0.1', () => resolve()));
    socket.close();
    await sleep(2_000);
    expect((await jobs.findById(id))?.state).toBe('ready');
    // A nudge (what every enqueue outside a transaction does, and callers after their commit) brings it at once.
    const nudgedAt = Date.now();
    queue.nudge();
    await done(id, 5_000);
    expect(Date.now() - nudgedAt).toBeLessThan(1_500);
  }, 60_000);
});
