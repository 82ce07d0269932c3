import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { SagaStep as SagaStepRow, SnakeNamingStrategy, type SagaStepState } from '@app/catalog';
import { redactSecrets } from '@app/common';
import { LeaseLostError, sqlDialect, type SqlDialect } from '@app/queue';

const NAMING = new SnakeNamingStrategy();

/** The holder of a job: journal writes are fenced like every other write of a worker. */
export interface JournalLease {
  jobId: number;
  fence: number;
}

/**
 * saga_steps, one row per step of a job's saga. Each write is its own commit
 * (before and after each effect) and carries the job's fence: a worker that
 * lost the job cannot touch the journal any more.
 */
@Injectable()
export class SagaJournalRepository {
  private readonly sql: SqlDialect;
  /** Whether steps may run at once: not on SQLite, whose one connection would run one step's writes inside another's transaction. */
  readonly concurrent: boolean;

  constructor(@InjectDataSource() private readonly dataSource: DataSource) {
    this.sql = sqlDialect(dataSource);
    this.concurrent = this.sql.kind !== 'sqlite';
  }

  /** The journal of a job, created (all pending) on the saga's first run. */
  async open(lease: JournalLease, saga: string, steps: readonly string[]): Promise<SagaStepRow[]> {
    const repo = this.dataSource.getRepository(SagaStepRow);
    const existing = await repo.find({ where: { jobId: lease.jobId }, order: { stepIndex: 'ASC' } });
    if (existing.length === 0) {
      await this.assertHeld(lease);
      await repo.insert(steps.map((stepName, stepIndex) => ({ jobId: lease.jobId, saga, stepIndex, stepName, state: 'pending' as const })));
      return repo.find({ where: { jobId: lease.jobId }, order: { stepIndex: 'ASC' } });
    }
    const names = existing.map((row) => row.stepName);
    if (existing[0]!.saga === saga && names.join() === steps.join()) return existing;
    if (existing[0]!.saga === saga && isSubsequence(names, steps)) {
      // A saga that gained steps (a release added one) while this job was in flight: its journal gains them as pending.
      await this.assertHeld(lease);
      await this.dataSource.transaction(async (m) => {
        const rows = m.getRepository(SagaStepRow);
        await rows.createQueryBuilder().update().set({ stepIndex: () => 'step_index + 1000' }).where('job_id = :job', { job: lease.jobId }).execute();
        for (const row of existing) await rows.update({ id: row.id }, { stepIndex: steps.indexOf(row.stepName) });
        const added = steps.map((stepName, stepIndex) => ({ stepName, stepIndex })).filter((s) => !names.includes(s.stepName));
        await rows.insert(added.map((s) => ({ jobId: lease.jobId, saga, stepIndex: s.stepIndex, stepName: s.stepName, state: 'pending' as const })));
      });
      return repo.find({ where: { jobId: lease.jobId }, order: { stepIndex: 'ASC' } });
    }
    throw new Error(`job ${lease.jobId}: its journal is for ${existing[0]!.saga} [${names.join(', ')}], not ${saga} [${steps.join(', ')}]`);
  }

  /** Every step back to pending: a compensated saga run again starts from the beginning. */
  async reset(lease: JournalLease): Promise<void> {
    await this.update(lease, null, { state: 'pending', attempt: 0, error: null, output: null, startedAt: null, finishedAt: null, durationMs: null });
  }

  async start(lease: JournalLease, stepIndex: number, state: 'running' | 'compensating'): Promise<void> {
    // A fresh run of a step clears its old error; a compensation keeps the error that caused it.
    const clear: Record<string, null> = state === 'running' ? { error: null } : {};
    await this.update(lease, stepIndex, { state, startedAt: 'now', finishedAt: null, durationMs: null, ...clear }, true);
  }

  async finish(
    lease: JournalLease,
    stepIndex: number,
    state: Exclude<SagaStepState, 'pending' | 'running' | 'compensating'>,
    result: { durationMs: number; output: string; error?: string | null },
  ): Promise<void> {
    await this.update(lease, stepIndex, {
      state,
      finishedAt: 'now',
      durationMs: result.durationMs,
      output: result.output.slice(-60_000),
      // Left as it is when not given: a compensated step keeps the error that made it fail.
      ...(result.error === undefined ? {} : { error: result.error }),
    });
  }

  /** Records an error on a step without changing its state (a compensation that failed). */
  async note(lease: JournalLease, stepIndex: number, error: string, output: string): Promise<void> {
    await this.update(lease, stepIndex, { error, output: output.slice(-60_000), finishedAt: 'now' });
  }

  steps(jobId: number): Promise<SagaStepRow[]> {
    return this.dataSource.getRepository(SagaStepRow).find({ where: { jobId }, order: { stepIndex: 'ASC' } });
  }

  private async update(
    lease: JournalLease,
    stepIndex: number | null,
    values: Record<string, string | number | null>,
    bumpAttempt = false,
  ): Promise<void> {
    const sets: string[] = [];
    const params: unknown[] = [];
    for (const [property, value] of Object.entries(values)) {
      const name = NAMING.columnName(property, undefined, []);
      if (value === 'now') sets.push(`${name} = ${this.sql.now}`);
      else {
        sets.push(`${name} = ?`);
        // A step's output and error never keep a secret the job handled (a password in a failing statement).
        params.push(typeof value === 'string' ? redactSecrets(value) : value);
      }
    }
    if (bumpAttempt) sets.push('attempt = attempt + 1');
    const runner = this.dataSource.createQueryRunner();
    try {
      const result = await runner.query(
        `UPDATE saga_steps SET ${sets.join(', ')}
         WHERE job_id = ? ${stepIndex === null ? '' : 'AND step_index = ?'}
           AND (SELECT fence FROM jobs WHERE id = ? AND state = 'running') = ?`,
        [...params, lease.jobId, ...(stepIndex === null ? [] : [stepIndex]), lease.jobId, lease.fence],
        true,
      );
      if ((result.affected ?? 0) === 0) throw new LeaseLostError(lease.jobId);
    } finally {
      await runner.release();
    }
  }

  private async assertHeld(lease: JournalLease): Promise<void> {
    const [row] = await this.dataSource.query(`SELECT fence, state FROM jobs WHERE id = ?`, [lease.jobId]);
    const job = row as { fence: number; state: string } | undefined;
    if (!job || Number(job.fence) !== lease.fence || job.state !== 'running') throw new LeaseLostError(lease.jobId);
  }
}

/** Whether `part` is `whole` with some names left out (same order). */
function isSubsequence(part: readonly string[], whole: readonly string[]): boolean {
  let i = 0;
  for (const name of whole) if (i < part.length && part[i] === name) i++;
  return i === part.length && new Set(part).size === part.length;
}
