import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Injectable, type INestApplicationContext } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import { defineJobKind, JobHandler, JobRepository, QueueService, type JobContext } from '@app/queue';
import { SagaJournalRepository, SagaModule, SagaRunner, type SagaDefinition, type SagaStep, type StepIO } from '@app/saga';
import { createTestCatalog, openCatalog, type TestCatalog } from '../support/catalog.js';
import { eventually, startQueueContext } from '../support/queue-context.js';

type Phase = 'before-effect' | 'after-effect' | 'mid-compensation';
interface Payload {
  dir: string;
  pivot?: string;
}

const STEPS = ['s1', 's2', 's3', 's4'];
const SAGA_JOB = defineJobKind<Payload>('test.saga', { maxAttempts: 6, leaseMs: 3_000, backoff: { baseMs: 20, maxMs: 50 } });

/** Test knobs, per saga directory: where it crashes, which steps fail and how often. */
const plans = new Map<
  string,
  { crash?: { step: string; phase: Phase; fired?: (jobId: number) => void }; fail: Map<string, number>; failCompensation: Set<string> }
>();
const plan = (dir: string) => plans.get(dir)!;
const hang = () => new Promise<never>(() => undefined);

/** A step whose effect is a file: created by execute, removed by compensate, both idempotent. */
class FileStep implements SagaStep<Payload & { jobId: number }> {
  constructor(readonly name: string) {}

  async execute(ctx: Payload & { jobId: number }, io: StepIO): Promise<void> {
    const p = plan(ctx.dir);
    await this.crashPoint(ctx, 'before-effect');
    const failures = p.fail.get(this.name) ?? 0;
    if (failures > 0) {
      p.fail.set(this.name, failures - 1);
      throw new Error(`${this.name} failed`);
    }
    writeFileSync(join(ctx.dir, this.name), 'made by the saga');
    io.log(`created ${this.name}`);
    await this.crashPoint(ctx, 'after-effect');
  }

  async compensate(ctx: Payload & { jobId: number }, io: StepIO): Promise<void> {
    if (plan(ctx.dir).failCompensation.has(this.name)) throw new Error(`cannot undo ${this.name}`);
    rmSync(join(ctx.dir, this.name), { force: true });
    io.log(`removed ${this.name}`);
    await this.crashPoint(ctx, 'mid-compensation');
  }

  private async crashPoint(ctx: Payload & { jobId: number }, phase: Phase): Promise<void> {
    const crash = plan(ctx.dir).crash;
    if (crash?.step === this.name && crash.phase === phase && crash.fired) {
      const fire = crash.fired;
      crash.fired = undefined;
      fire(ctx.jobId);
      await hang(); // this "process" is dead: it never does anything again
    }
  }
}

const definition = (payload: Payload, jobId: number): SagaDefinition<Payload & { jobId: number }, Payload> => ({
  name: 'test-saga',
  steps: STEPS.map((s) => new FileStep(s)),
  pivot: payload.pivot,
  stepRetryDelaysMs: [5],
  loadContext: async (p) => ({ ...p, jobId }),
});

@Injectable()
class SagaJobHandler {
  constructor(private readonly runner: SagaRunner) {}

  @JobHandler(SAGA_JOB)
  async run(payload: Payload, context: JobContext): Promise<void> {
    await this.runner.run(definition(payload, context.jobId), payload, context);
  }
}

describe('saga runner on MariaDB', () => {
  let catalog: TestCatalog;
  let workers: INestApplicationContext[];
  let db: DataSource;
  let queue: QueueService;
  let jobs: JobRepository;
  let journal: SagaJournalRepository;
  const dirs: string[] = [];

  beforeAll(async () => {
    catalog = await createTestCatalog('mariadb', 'saga');
    db = await openCatalog(catalog);
    workers = [
      await startQueueContext(catalog.url, [SagaJobHandler], undefined, [SagaModule]),
      await startQueueContext(catalog.url, [SagaJobHandler], undefined, [SagaModule]),
    ];
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

  const newSaga = (options: { fail?: Record<string, number>; failCompensation?: string[]; crash?: { step: string; phase: Phase } } = {}) => {
    const dir = mkdtempSync(join(tmpdir(), 'saga-'));
    dirs.push(dir);
    plans.set(dir, { fail: new Map(Object.entries(options.fail ?? {})), failCompensation: new Set(options.failCompensation ?? []) });
    let crashed: Promise<number> | null = null;
    if (options.crash) {
      crashed = new Promise<number>((resolve) => (plan(dir).crash = { ...options.crash!, fired: resolve }));
    }
    return { dir, crashed };
  };
  /** What a dead worker leaves: its lease runs out and another claim fences it off. */
  const killHolder = (id: number) =>
    db.query(`UPDATE jobs SET fence = fence + 1, lease_expires_at = '2000-01-01 00:00:00.000' WHERE id = ?`, [id]);
  const finished = (id: number) =>
    eventually(async () => {
      const job = await jobs.findById(id);
      return job && ['done', 'dead'].includes(job.state) ? job : null;
    }, 30_000, `saga job ${id} to finish`);
  const files = (dir: string) => STEPS.filter((s) => existsSync(join(dir, s)));
  const states = async (id: number) => (await journal.steps(id)).map((r) => `${r.stepName}:${r.state}`);

  const crashCases = STEPS.flatMap((step) => (['before-effect', 'after-effect'] as const).map((phase) => ({ step, phase })));
  it.each(crashCases)('completes after a crash at $step ($phase), running that step again', async ({ step, phase }) => {
    const { dir, crashed } = newSaga({ crash: { step, phase } });
    const { job } = await queue.enqueue(SAGA_JOB, { dir });
    const id = await crashed!;
    await killHolder(id);
    const done = await finished(job.id);
    expect(done.state).toBe('done');
    expect(files(dir)).toEqual(STEPS);
    expect(await states(job.id)).toEqual(STEPS.map((s) => `${s}:done`));
    const rows = await journal.steps(job.id);
    expect(rows.find((r) => r.stepName === step)!.attempt).toBe(2);
    expect(rows.filter((r) => r.stepName !== step).every((r) => r.attempt === 1)).toBe(true);
  });

  const compensationCases = ['s1', 's2', 's3', 's4'].map((step) => ({ step }));
  it.each(compensationCases)('ends compensated with nothing left after a crash while compensating $step', async ({ step }) => {
    const { dir, crashed } = newSaga({ fail: { s4: 99 }, crash: { step, phase: 'mid-compensation' } });
    const { job } = await queue.enqueue(SAGA_JOB, { dir });
    await killHolder(await crashed!);
    const dead = await finished(job.id);
    expect(dead.state).toBe('dead');
    expect(dead.lastError).toContain('SagaCompensated: test-saga: step s4 failed and every earlier step was compensated');
    expect(files(dir)).toEqual([]);
    expect(await states(job.id)).toEqual(STEPS.map((s) => `${s}:compensated`));
    expect((await journal.steps(job.id)).find((r) => r.stepName === 's4')!.error).toBe('s4 failed');
  });

  it('undoes everything on the last attempt when a step kills its worker every time', async () => {
    const { dir } = newSaga();
    const { job } = await queue.enqueue(SAGA_JOB, { dir });
    // s3 "kills" its worker on every attempt but the last, which must not run it again.
    for (let attempt = 1; attempt < SAGA_JOB.options.maxAttempts; attempt++) {
      const crashed = new Promise<number>((resolve) => (plan(dir).crash = { step: 's3', phase: 'before-effect', fired: resolve }));
      await killHolder(await crashed);
    }
    plan(dir).crash = undefined;
    const dead = await finished(job.id);
    expect(dead).toMatchObject({ state: 'dead', attempts: SAGA_JOB.options.maxAttempts });
    expect(dead.lastError).toContain('step s3 failed and every earlier step was compensated: the worker died during this step');
    expect(files(dir)).toEqual([]);
    expect(await states(job.id)).toEqual(['s1:compensated', 's2:compensated', 's3:compensated', 's4:pending']);
  });

  it('compensates in reverse order, skipping steps that never ran', async () => {
    const { dir } = newSaga({ fail: { s2: 99 } });
    const { job } = await queue.enqueue(SAGA_JOB, { dir });
    expect((await finished(job.id)).state).toBe('dead');
    expect(await states(job.id)).toEqual(['s1:compensated', 's2:compensated', 's3:pending', 's4:pending']);
    const lines = (await jobs.logs(job.id)).map((l) => l.line).filter((l) => l.includes('removed'));
    expect(lines).toEqual(['[s2] removed s2', '[s1] removed s1']);
    expect(files(dir)).toEqual([]);
  });

  it('retries a failing step within the run before giving up', async () => {
    const { dir } = newSaga({ fail: { s3: 1 } });
    const { job } = await queue.enqueue(SAGA_JOB, { dir });
    expect((await finished(job.id)).state).toBe('done');
    expect(files(dir)).toEqual(STEPS);
  });

  it('never compensates past the pivot: a failing later step is retried forward', async () => {
    const { dir } = newSaga({ fail: { s4: 4 } });
    const { job } = await queue.enqueue(SAGA_JOB, { dir, pivot: 's3' });
    const done = await finished(job.id);
    expect(done.state).toBe('done');
    expect(done.attempts).toBe(3);
    expect(files(dir)).toEqual(STEPS);
    expect(await states(job.id)).toEqual(STEPS.map((s) => `${s}:done`));
  });

  it('stops when a compensation fails (needs attention), and goes on when an operator retries', async () => {
    const { dir } = newSaga({ fail: { s4: 99 }, failCompensation: ['s2'] });
    const { job } = await queue.enqueue(SAGA_JOB, { dir });
    const stuck = await finished(job.id);
    expect(stuck.state).toBe('dead');
    expect(stuck.attempts).toBe(1);
    expect(stuck.lastError).toBe('needs attention: SagaNeedsAttention: test-saga: compensating step s2 failed: cannot undo s2');
    expect((await jobs.needingAttention()).map((j) => j.id)).toContain(job.id);
    expect(await states(job.id)).toEqual(['s1:done', 's2:compensating', 's3:compensated', 's4:compensated']);
    expect(files(dir)).toEqual(['s1', 's2']);

    plan(dir).failCompensation.clear();
    expect(await jobs.rerun(job.id)).toBe(true);
    const after = await finished(job.id);
    expect(after.lastError).toContain('SagaCompensated');
    expect((await jobs.needingAttention()).map((j) => j.id)).not.toContain(job.id);
    expect(await states(job.id)).toEqual(STEPS.map((s) => `${s}:compensated`));
    expect(files(dir)).toEqual([]);
  });

  it('starts a compensated saga over when an operator reruns it', async () => {
    const { dir } = newSaga({ fail: { s3: 2 } });
    const { job } = await queue.enqueue(SAGA_JOB, { dir });
    expect((await finished(job.id)).state).toBe('dead');
    expect(files(dir)).toEqual([]);
    expect(await jobs.rerun(job.id)).toBe(true);
    expect((await finished(job.id)).state).toBe('done');
    expect(files(dir)).toEqual(STEPS);
    expect(await states(job.id)).toEqual(STEPS.map((s) => `${s}:done`));
  });
});
