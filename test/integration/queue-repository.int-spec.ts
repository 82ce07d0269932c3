import 'reflect-metadata';
import type { DataSource } from 'typeorm';
import { Job } from '@app/catalog';
import { JobRepository } from '@app/queue';
import { CATALOG_KINDS, createTestCatalog, openCatalog, type TestCatalog } from '../support/catalog.js';

/** The queue's SQL protocol on both catalog drivers, without a worker loop. */
describe.each(CATALOG_KINDS)('job repository on %s', (kind) => {
  let test: TestCatalog;
  let db: DataSource;
  let jobs: JobRepository;
  const lease = () => 30_000;

  beforeAll(async () => {
    test = await createTestCatalog(kind, 'queue');
    db = await openCatalog(test);
    jobs = new JobRepository(db);
  });
  afterAll(async () => {
    await db?.destroy();
    await test?.drop();
  });
  beforeEach(async () => {
    await db.query('DELETE FROM jobs');
  });

  const add = (over: Partial<Parameters<JobRepository['enqueue']>[0]> = {}) =>
    jobs.enqueue({ kind: 'engine.noop', payload: {}, maxAttempts: 3, ...over }).then((r) => r.job);
  /** Moves a running job's lease into the past, as if its worker had stalled that long. */
  const expireLease = (id: number) =>
    db.query(`UPDATE jobs SET lease_expires_at = '2000-01-01 00:00:00.000' WHERE id = ?`, [id]);
  const state = async (id: number) => (await jobs.findById(id))!;

  it('returns the same job for the same idempotency key, even when producers race', async () => {
    const results = await Promise.all(
      Array.from({ length: 10 }, () => jobs.enqueue({ kind: 'engine.noop', payload: { n: 1 }, maxAttempts: 3, idempotencyKey: 'order:A-1' })),
    );
    expect(new Set(results.map((r) => r.job.id)).size).toBe(1);
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(await db.getRepository(Job).countBy({ idempotencyKey: 'order:A-1' })).toBe(1);
  });

  it('claims no more than asked, in priority then age order, never what is not due', async () => {
    const low = await add({ priority: 5 });
    const ids: number[] = [];
    for (let i = 0; i < 5; i++) ids.push((await add()).id);
    const later = await add({ delayMs: 60_000 });
    const first = await jobs.claim('w1', 3, lease);
    expect(first.map((j) => j.id)).toEqual(ids.slice(0, 3));
    const rest = await jobs.claim('w2', 10, lease);
    expect(rest.map((j) => j.id)).toEqual([...ids.slice(3), low.id]);
    expect((await state(later.id)).state).toBe('ready');
    for (const j of [...first, ...rest]) {
      expect(j).toMatchObject({ attempts: 1, fence: 1 });
      expect(await state(j.id)).toMatchObject({ state: 'running', leaseOwner: j.id === low.id || rest.includes(j) ? 'w2' : 'w1' });
    }
  });

  it('never gives one job to two concurrent claimers, and loses none', async () => {
    const ids: number[] = [];
    for (let i = 0; i < 30; i++) ids.push((await add()).id);
    const seen: number[] = [];
    for (let round = 0; round < 30 && seen.length < ids.length; round++) {
      const batches = await Promise.all(['w1', 'w2', 'w3'].map((w) => jobs.claim(w, 4, lease)));
      for (const batch of batches) {
        expect(batch.length).toBeLessThanOrEqual(4);
        seen.push(...batch.map((j) => j.id));
      }
    }
    expect(seen.sort((a, b) => a - b)).toEqual(ids);
  });

  it('fences: after the lease is reclaimed, the old holder can neither renew nor finish', async () => {
    const job = await add();
    const [first] = await jobs.claim('w1', 1, lease);
    await expireLease(job.id);
    expect(await jobs.reapExpired()).toEqual({ requeued: 1, buried: 0 });
    const [second] = await jobs.claim('w2', 1, lease);
    expect(second!.fence).toBe(first!.fence + 1);
    expect(second!.attempts).toBe(2);
    expect(await jobs.renew(job.id, first!.fence, 30_000)).toBe(false);
    expect(await jobs.complete(job.id, first!.fence)).toBe(false);
    expect(await jobs.bury(job.id, first!.fence, 'stale')).toBe(false);
    expect((await state(job.id)).state).toBe('running');
    expect(await jobs.complete(job.id, second!.fence)).toBe(true);
    expect(await state(job.id)).toMatchObject({ state: 'done', leaseOwner: null, runningKey: null });
  });

  it('runs one job per resource key; the next waits blocked and is promoted when the holder finishes', async () => {
    const a = await add({ resourceKey: 'install:42' });
    const b = await add({ resourceKey: 'install:42' });
    const other = await add({ resourceKey: 'install:43' });
    const claimed = await jobs.claim('w1', 10, lease);
    expect(claimed.map((j) => j.id).sort()).toEqual([a.id, other.id].sort());
    expect((await state(b.id)).state).toBe('blocked');
    expect(await jobs.claim('w2', 10, lease)).toEqual([]);

    expect(await jobs.complete(a.id, claimed.find((j) => j.id === a.id)!.fence)).toBe(true);
    expect((await state(b.id)).state).toBe('ready');
    const [next] = await jobs.claim('w2', 10, lease);
    expect(next!.id).toBe(b.id);
    expect((await state(b.id)).runningKey).toBe('install:42');
  });

  it('makes a job already held (insertHeld): running as a claim leaves it, unless its key is held or its idempotency key exists', async () => {
    const held = await db.transaction((m) => jobs.insertHeld({ kind: 'engine.noop', payload: { n: 1 }, maxAttempts: 3, resourceKey: 'install:7', idempotencyKey: 'held:1' }, 'parent-worker', 30_000, m));
    expect(held).toMatchObject({ fence: 1, attempt: 1 });
    expect(await state(held!.id)).toMatchObject({ state: 'running', attempts: 1, fence: 1, leaseOwner: 'parent-worker', runningKey: 'install:7', resourceKey: 'install:7' });
    expect((await state(held!.id)).leaseExpiresAt!.getTime()).toBeGreaterThan(Date.now() + 20_000);
    // Nobody else claims it; a second one on the key, or the same idempotency key, cannot be held (the caller's transaction goes on).
    expect(await jobs.claim('w1', 10, lease)).toEqual([]);
    const refused = await db.transaction(async (m) => [
      await jobs.insertHeld({ kind: 'engine.noop', payload: {}, maxAttempts: 3, resourceKey: 'install:7', idempotencyKey: 'held:2' }, 'parent-worker', 30_000, m),
      await jobs.insertHeld({ kind: 'engine.noop', payload: {}, maxAttempts: 3, resourceKey: 'install:8', idempotencyKey: 'held:1' }, 'parent-worker', 30_000, m),
      (await jobs.enqueue({ kind: 'engine.noop', payload: {}, maxAttempts: 3, resourceKey: 'install:7', idempotencyKey: 'held:2' }, m)).job.state,
    ]);
    // The one refused on its key goes to the queue instead: a claim puts it behind the held job.
    expect(refused).toEqual([null, null, 'ready']);
    expect(await db.getRepository(Job).count()).toBe(2);
    expect(await jobs.claim('w1', 10, lease)).toEqual([]);
    // Its holder finishes it with its fence, and the key's next job moves up.
    expect(await jobs.complete(held!.id, 1, 'install:7')).toBe(true);
    const [next] = await jobs.claim('w1', 10, lease);
    expect(next).toMatchObject({ resourceKey: 'install:7' });
  });

  it('frees the key of a job whose worker died, when its lease expires', async () => {
    const a = await add({ resourceKey: 'code-group:7', maxAttempts: 1 });
    const b = await add({ resourceKey: 'code-group:7' });
    await jobs.claim('w1', 10, lease);
    expect((await state(b.id)).state).toBe('blocked');
    await expireLease(a.id);
    expect(await jobs.reapExpired()).toEqual({ requeued: 0, buried: 1 });
    expect(await state(a.id)).toMatchObject({ state: 'dead', runningKey: null });
    expect((await state(a.id)).lastError).toContain('no attempts left');
    const [next] = await jobs.claim('w2', 10, lease);
    expect(next!.id).toBe(b.id);
  });

  it('puts a job whose lease expired back in its place: no backoff, ahead of the jobs queued after it', async () => {
    const first = await add();
    const [held] = await jobs.claim('w1', 1, lease);
    const later = [await add(), await add()];
    await expireLease(first.id);
    expect(await jobs.reapExpired()).toEqual({ requeued: 1, buried: 0 });
    expect(await state(first.id)).toMatchObject({ state: 'ready', leaseOwner: null, attempts: 1 });
    const next = await jobs.claim('w2', 3, lease);
    expect(next.map((j) => j.id)).toEqual([first.id, ...later.map((j) => j.id)]);
    expect(next[0]).toMatchObject({ attempts: 2, fence: held!.fence + 1 });
  });

  it('takes back at once, before their lease expires, the jobs of an owner known to be dead, and only those', async () => {
    const mine = await add({ resourceKey: 'install:7' });
    const behind = await add({ resourceKey: 'install:7' });
    const spent = await add({ maxAttempts: 1 });
    const others = await add();
    await jobs.claim('host-a:101:s1:dead', 3, lease);
    expect((await state(behind.id)).state).toBe('blocked');
    await jobs.claim('host-a:102:s1:live', 1, lease);
    expect((await jobs.runningOwners()).sort()).toEqual(['host-a:101:s1:dead', 'host-a:102:s1:live']);

    expect(await jobs.reclaimFromDeadOwner('host-a:101:s1:dead')).toEqual({ requeued: 1, buried: 1 });
    expect(await state(mine.id)).toMatchObject({ state: 'ready', runningKey: null, leaseOwner: null, attempts: 1 });
    expect((await state(mine.id)).lastError).toContain('worker host-a:101:s1:dead is gone');
    expect(await state(spent.id)).toMatchObject({ state: 'dead', runningKey: null });
    expect((await state(spent.id)).lastError).toContain('no attempts left');
    expect(await state(others.id)).toMatchObject({ state: 'running', leaseOwner: 'host-a:102:s1:live' });
    // The job taken back keeps its key's turn: it runs again before the job blocked behind it.
    expect((await state(behind.id)).state).toBe('blocked');
    const [again] = await jobs.claim('w2', 1, lease);
    expect(again).toMatchObject({ id: mine.id, attempts: 2 });
    expect((await state(mine.id)).runningKey).toBe('install:7');
  });

  it('unblocks a job whose holder finished before it was marked blocked', async () => {
    const b = await add({ resourceKey: 'nginx:server:3' });
    await db.query(`UPDATE jobs SET state = 'blocked' WHERE id = ?`, [b.id]);
    expect(await jobs.promoteOrphanedBlocked()).toBe(1);
    expect((await state(b.id)).state).toBe('ready');
  });

  it('ends a job that crashes its worker every time dead, not in a loop', async () => {
    const job = await add({ maxAttempts: 3 });
    for (let attempt = 1; attempt <= 3; attempt++) {
      const [claimed] = await jobs.claim('w', 1, lease);
      expect(claimed!.attempts).toBe(attempt);
      await expireLease(job.id);
      await jobs.reapExpired();
    }
    expect((await state(job.id)).state).toBe('dead');
    expect(await jobs.claim('w', 1, lease)).toEqual([]);
  });

  it('retries later with the database clock, reruns and cancels', async () => {
    const job = await add();
    const [c] = await jobs.claim('w', 1, lease);
    expect(await jobs.retryLater(job.id, c!.fence, 'boom', 60_000)).toBe(true);
    expect(await state(job.id)).toMatchObject({ state: 'ready', lastError: 'boom' });
    expect(await jobs.claim('w', 1, lease)).toEqual([]);

    const done = await add();
    const [d] = await jobs.claim('w', 1, lease);
    await jobs.complete(done.id, d!.fence);
    expect(await jobs.rerun(done.id)).toBe(true);
    expect(await state(done.id)).toMatchObject({ state: 'ready', attempts: 0 });

    const [r] = await jobs.claim('w', 1, lease);
    expect(await jobs.cancel(done.id, 'operator')).toBe(true);
    expect(await jobs.renew(done.id, r!.fence, 30_000)).toBe(false);
    expect(await state(done.id)).toMatchObject({ state: 'cancelled', lastError: 'operator' });
  });

  it('keeps output lines in order and tails them after a given line', async () => {
    const job = await add();
    await jobs.appendLogs(job.id, 1, [
      { level: 'info', line: 'one' },
      { level: 'info', line: 'two' },
    ]);
    await jobs.appendLogs(job.id, 1, [{ level: 'error', line: 'three' }]);
    const all = await jobs.logs(job.id);
    expect(all.map((l) => l.line)).toEqual(['one', 'two', 'three']);
    expect((await jobs.logs(job.id, all[1]!.id)).map((l) => [l.level, l.line])).toEqual([['error', 'three']]);
    expect(all.every((l) => l.jobId === job.id && l.attempt === 1 && l.createdAt instanceof Date && !Number.isNaN(l.createdAt.getTime()))).toBe(true);
  });

  it('writes a large batch of output lines (more than one statement holds) in order', async () => {
    const job = await add();
    const lines = Array.from({ length: 1201 }, (_, i) => ({ level: 'info' as const, line: `line ${i}` }));
    await jobs.appendLogs(job.id, 1, lines);
    expect((await jobs.logs(job.id, 0, 2000)).map((l) => l.line)).toEqual(lines.map((l) => l.line));
  });

  it('claims on after the server dropped a claim connection (restart, idle timeout), and at READ COMMITTED', async () => {
    if (kind !== 'mariadb') return;
    const ids = async (): Promise<number[]> =>
      (await db.query(`SELECT ID AS id FROM information_schema.PROCESSLIST WHERE DB = DATABASE()`)).map((r: { id: number }) => Number(r.id));
    const before = new Set(await ids());
    const other = await openCatalog(test, { migrate: false });
    try {
      const repository = new JobRepository(other);
      const first = await add();
      expect((await repository.claim('w1', 1, lease)).map((j) => j.id)).toEqual([first.id]);
      const [{ id: pooled }] = await other.query('SELECT CONNECTION_ID() AS id');
      const sessions = (await ids()).filter((id) => !before.has(id) && id !== Number(pooled));
      expect(sessions).toHaveLength(1);
      const [variable] = await db.query(
        `SELECT VARIABLE_VALUE AS v FROM information_schema.SESSION_VARIABLES WHERE VARIABLE_NAME IN ('TX_ISOLATION', 'TRANSACTION_ISOLATION') LIMIT 1`,
      );
      expect(variable.v).toBe('REPEATABLE-READ'); // the pool's other connections keep the server's default
      await db.query(`KILL CONNECTION ${sessions[0]}`);
      const second = await add();
      expect((await repository.claim('w1', 1, lease)).map((j) => j.id)).toEqual([second.id]);
      expect(await repository.complete(second.id, 1, null)).toBe(true);
    } finally {
      await other.destroy();
    }
  });

  it("writes a worker's output and completion on the connection its claim used, and drops that connection once it closed", async () => {
    if (kind !== 'mariadb') return;
    const connections = async (): Promise<Map<number, number>> =>
      new Map(
        (await db.query(`SELECT ID AS id, QUERY_ID AS q FROM information_schema.PROCESSLIST WHERE DB = DATABASE()`)).map(
          (r: { id: number; q: number }) => [Number(r.id), Number(r.q)] as const,
        ),
      );
    const before = await connections();
    const other = await openCatalog(test, { migrate: false });
    try {
      const repository = new JobRepository(other);
      const job = await add();
      const [claimed] = await repository.claim('w1', 1, lease);
      const [{ id: pooled }] = await other.query('SELECT CONNECTION_ID() AS id');
      const session = [...(await connections()).keys()].find((id) => !before.has(id) && id !== Number(pooled))!;
      const queries = await connections();
      await repository.appendLogs(job.id, claimed!.attempts, [{ level: 'info', line: 'noop' }]);
      expect(await repository.complete(job.id, claimed!.fence, null)).toBe(true);
      const after = await connections();
      // Each statement moves its connection's QUERY_ID on: the claim's moved (two statements), the pool's did not.
      expect(after.get(session)! - queries.get(session)!).toBeGreaterThanOrEqual(2);
      expect(after.get(Number(pooled))).toBe(queries.get(Number(pooled)));

      // The server closes the idle claim connection: the next statement goes elsewhere and succeeds.
      const second = await add();
      const [again] = await repository.claim('w1', 1, lease);
      await db.query(`KILL CONNECTION ${session}`);
      const deadline = Date.now() + 5_000;
      while ((await connections()).has(session) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 100)); // the client sees the close
      expect(await repository.complete(second.id, again!.fence, null)).toBe(true);
      expect((await jobs.findById(second.id))?.state).toBe('done');
    } finally {
      await other.destroy();
    }
  });
});
