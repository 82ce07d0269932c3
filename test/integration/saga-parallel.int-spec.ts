import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Injectable, type INestApplicationContext } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import { defineJobKind, JobHandler, JobRepository, QueueService, type JobContext } from '@app/queue';
import { SagaJournalRepository, SagaModule, SagaRunner, type SagaDefinition, type SagaStep, type StepIO } from '@app/saga';
import { CATALOG_KINDS, createTestCatalog, openCatalog, type TestCatalog } from '../support/catalog.js';
import { eventually, startQueueContext } from '../support/queue-context.js';

/**
 * A saga whose steps need only some of the steps before them: `first`, then
 * two lanes (`a1` → `a2` and `b`), then `join` after both, then `mail` (the
 * pivot). Each step's effect is a file; each records when it ran.
 */
interface Payload {
  dir: string;
}
interface Plan {
  /** How long each step's execute takes. */
  ms: Record<string, number>;
  fail: Set<string>;
  /** A step that never returns, the first time it runs (its worker died there). */
  hangOnce?: string;
  hung?: (jobId: number) => void;
  spans: Map<string, { start: number; end: number }>;
  /** Which files existed when each compensation began. */
  seenAtCompensation: Map<string, string[]>;
}
const plans = new Map<string, Plan>();
const NAMES = ['first', 'a1', 'a2', 'b', 'join', 'mail'];
const PARALLEL_JOB = defineJobKind<Payload>('test.saga-parallel', { maxAttempts: 4, leaseMs: 3_000, backoff: { baseMs: 20, maxMs: 50 } });
const files = (dir: string) => NAMES.filter((n) => existsSync(join(dir, n)));

class TimedStep implements SagaStep<Payload & { jobId: number }> {
  constructor(
    readonly name: string,
    readonly after?: readonly string[],
  ) {}

  async execute(ctx: Payload & { jobId: number }, io: StepIO): Promise<void> {
    const plan = plans.get(ctx.dir)!;
    const start = Date.now();
    if (plan.hangOnce === this.name && plan.hung) {
      const hung = plan.hung;
      plan.hung = undefined;
      hung(ctx.jobId);
      await new Promise<never>(() => undefined);
    }
    await new Promise((resolve) => setTimeout(resolve, plan.ms[this.name] ?? 0));
    if (plan.fail.has(this.name)) throw Object.assign(new Error(`${this.name} failed`), { permanent: true });
    writeFileSync(join(ctx.dir, this.name), 'made by the saga');
    plan.spans.set(this.name, { start, end: Date.now() });
    io.log(`made ${this.name}`);
  }

  async compensate(ctx: Payload & { jobId: number }): Promise<void> {
    plans.get(ctx.dir)!.seenAtCompensation.set(this.name, files(ctx.dir));
    rmSync(join(ctx.dir, this.name), { force: true });
  }
}

const definition = (jobId: number): SagaDefinition<Payload & { jobId: number }, Payload> => ({
  name: 'test-saga-parallel',
  steps: [new TimedStep('first'), new TimedStep('a1', ['first']), new TimedStep('a2'), new TimedStep('b', ['first']), new TimedStep('join', ['a2', 'b']), new TimedStep('mail')],
  pivot: 'mail',
  stepRetryDelaysMs: [],
  loadContext: async (p) => ({ ...p, jobId }),
});

@Injectable()
class ParallelSagaHandler {
  constructor(private readonly runner: SagaRunner) {}

  @JobHandler(PARALLEL_JOB)
  async run(payload: Payload, context: JobContext): Promise<void> {
    await this.runner.run(definition(context.jobId), payload, context);
  }
}

describe.each(CATALOG_KINDS)('saga steps that need only some earlier steps (%s)', (kind) => {
  let catalog: TestCatalog;
  let workers: INestApplicationContext[];
  let db: DataSource;
  let queue: QueueService;
  let jobs: JobRepository;
  let journal: SagaJournalRepository;
  const dirs: string[] = [];

  beforeAll(async () => {
    catalog = await createTestCatalog(kind, 'saga_parallel');
    db = await openCatalog(catalog);
    workers = [await startQueueContext(catalog.url, [ParallelSagaHandler], undefined, [SagaModule])];
    // SQLite: one engine process per catalog file (the embedded default); MariaDB: a second worker takes over a dead one's job.
    if (kind === 'mariadb') workers.push(await startQueueContext(catalog.url, [ParallelSagaHandler], undefined, [SagaModule]));
    queue = workers[0]!.get(QueueService);
    jobs = workers[0]!.get(JobRepository);
    journal = workers[0]!.get(SagaJournalRepository);
  });
  afterAll(async () => {
    for (const w of workers ?? []) await w.close();
    await db?.destroy();
    await catalog?.drop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  const newSaga = (plan: Partial<Plan> = {}) => {
    const dir = mkdtempSync(join(tmpdir(), 'saga-par-'));
    dirs.push(dir);
    plans.set(dir, { ms: {}, fail: new Set(), spans: new Map(), seenAtCompensation: new Map(), ...plan });
    return { dir, plan: plans.get(dir)! };
  };
  const finished = (id: number) =>
    eventually(async () => {
      const job = await jobs.findById(id);
      return job && ['done', 'dead'].includes(job.state) ? job : null;
    }, 30_000, `saga job ${id} to finish`);
  const states = async (id: number) => Object.fromEntries((await journal.steps(id)).map((r) => [r.stepName, r.state]));

  it('runs the lanes at once where the catalog allows it, and a step only once all it needs is done', async () => {
    const { dir, plan } = newSaga({ ms: { a1: 300, a2: 300, b: 400 } });
    const { job } = await queue.enqueue(PARALLEL_JOB, { dir });
    expect((await finished(job.id)).state).toBe('done');
    expect(files(dir)).toEqual(NAMES);
    const span = (n: string) => plan.spans.get(n)!;
    expect(span('a1').start).toBeGreaterThanOrEqual(span('first').end);
    expect(span('b').start).toBeGreaterThanOrEqual(span('first').end);
    expect(span('a2').start).toBeGreaterThanOrEqual(span('a1').end);
    expect(span('join').start).toBeGreaterThanOrEqual(Math.max(span('a2').end, span('b').end));
    expect(span('mail').start).toBeGreaterThanOrEqual(span('join').end);
    const overlap = span('b').start < span('a1').end && span('a1').start < span('b').end;
    // On SQLite one after the other, in list order (its one connection would mix the steps' transactions).
    expect(overlap).toBe(kind === 'mariadb');
    if (kind === 'sqlite') expect(span('b').start).toBeGreaterThanOrEqual(span('a2').end);
    // The journal keeps a step's start and end to the millisecond: a 300 ms step reads as about that (whole seconds gave 0 or 1000).
    const a1 = (await journal.steps(job.id)).find((r) => r.stepName === 'a1')!;
    const recordedMs = a1.finishedAt!.getTime() - a1.startedAt!.getTime();
    expect(recordedMs).toBeGreaterThanOrEqual(290);
    expect(recordedMs).toBeLessThan(900);
  });

  it('lets the other lane finish when one fails, then undoes everything that ran, newest first', async () => {
    const { dir, plan } = newSaga({ ms: { a1: 500, b: 100 }, fail: new Set(['b']) });
    const { job } = await queue.enqueue(PARALLEL_JOB, { dir });
    const dead = await finished(job.id);
    expect(dead.state).toBe('dead');
    expect(dead.lastError).toContain('step b failed');
    expect(files(dir)).toEqual([]);
    const s = await states(job.id);
    expect(s.join).toBe('pending');
    expect(s.mail).toBe('pending');
    expect(s.b).toBe('compensated');
    expect(s.first).toBe('compensated');
    if (kind === 'mariadb') {
      // a1 ran beside b: it was let finish (its file was there to undo), and a2 never started after b failed.
      expect(s.a1).toBe('compensated');
      expect(plan.seenAtCompensation.get('a1')).toEqual(['first', 'a1']);
      expect(s.a2).toBe('pending');
    }
    expect(plan.seenAtCompensation.get('first')).toEqual(['first']);
    expect((await journal.steps(job.id)).find((r) => r.stepName === 'b')!.error).toBe('b failed');
  });

  // MariaDB only: a SQLite catalog has one engine process (the embedded default), and its steps run one after the other.
  if (kind === 'mariadb') it('resumes both lanes after a worker died inside one of them', async () => {
    let died!: (jobId: number) => void;
    const hung = new Promise<number>((resolve) => (died = resolve));
    const { dir } = newSaga({ ms: { a1: 200, b: 200 }, hangOnce: 'b', hung: (id) => died(id) });
    const { job } = await queue.enqueue(PARALLEL_JOB, { dir });
    const id = await hung;
    // What a dead worker leaves: its lease runs out and another claim fences it off.
    await db.query(`UPDATE jobs SET fence = fence + 1, lease_expires_at = '2000-01-01 00:00:00.000' WHERE id = ?`, [id]);
    expect((await finished(job.id)).state).toBe('done');
    expect(files(dir)).toEqual(NAMES);
    const rows = await journal.steps(job.id);
    expect(rows.find((r) => r.stepName === 'b')!.attempt).toBe(2);
    expect(rows.every((r) => r.state === 'done')).toBe(true);
  });
});
