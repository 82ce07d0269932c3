import { Injectable, Optional } from '@nestjs/common';
import { Metrics } from '@app/metrics';
import type { SagaStep as SagaStepRow } from '@app/catalog';
import { JobDeferredError, LeaseLostError, type JobContext } from '@app/queue';
import { DEFAULT_STEP_RETRY_DELAYS_MS, type SagaDefinition, type StepIO } from './saga.js';
import { SagaCompensatedError, SagaForwardRetryError, SagaNeedsAttentionError } from './saga.errors.js';
import { SagaJournalRepository, type JournalLease } from './saga-journal.repository.js';

const message = (error: unknown) => (error instanceof Error ? error.message : String(error));

/**
 * Runs a saga inside a queue job, from its journal. Whoever claims the job
 * resumes where the journal says: a step left running is executed again
 * (never assumed done); a saga that was compensating goes on compensating.
 */
@Injectable()
export class SagaRunner {
  constructor(
    private readonly journal: SagaJournalRepository,
    @Optional() private readonly metrics?: Metrics,
  ) {}

  async run<C, P extends object>(saga: SagaDefinition<C, P>, payload: P, job: JobContext): Promise<void> {
    const lease: JournalLease = { jobId: job.jobId, fence: job.fence };
    let rows = await this.journal.open(lease, saga.name, saga.steps.map((s) => s.name));
    const context = await saga.loadContext(payload);

    if (isFullyCompensated(rows)) {
      if (job.attempt > 1) {
        // A crash after the last compensation, before the job was closed: close it now.
        const failed = failurePoint(rows);
        await saga.onCompensated?.(context, `${failed.step}: ${failed.error}`);
        throw new SagaCompensatedError(saga.name, failed.step, failed.error);
      }
      // Attempt 1 of a compensated journal: an operator reran the job. Start over.
      job.log(`${saga.name}: previous run was compensated; starting again`);
      await this.journal.reset(lease);
      rows = await this.journal.steps(job.jobId);
    }

    if (rows.some((r) => r.state === 'failed' || r.state === 'compensating' || r.state === 'compensated')) {
      // A run that gave up was interrupted while compensating: go on compensating.
      await this.compensate(saga, context, rows, lease, job);
      return;
    }

    const pivot = saga.pivot ? saga.steps.findIndex((s) => s.name === saga.pivot) : saga.steps.length;
    if (pivot < 0) throw new Error(`${saga.name}: pivot ${saga.pivot} is not one of its steps`);
    const needs = stepNeeds(saga, pivot);

    const interrupted = rows.flatMap((r, index) => (r.state === 'running' && index < pivot ? [index] : []));
    if (interrupted.length > 0 && job.attempt >= job.maxAttempts) {
      // The job's last attempt, and its worker died inside this step every time
      // so far: running it again would only end the job dead with the earlier
      // steps' effects left behind. Undo them instead.
      for (const index of interrupted) {
        await this.journal.finish(lease, index, 'failed', {
          durationMs: 0,
          output: '',
          error: `the worker died during this step on each of ${job.attempt - 1} earlier attempt(s)`,
        });
      }
      await this.compensate(saga, context, await this.journal.steps(job.jobId), lease, job);
      return;
    }

    if (await this.forward(saga, context, rows, needs, pivot, lease, job)) {
      await saga.onCompleted?.(context);
      job.log(`${saga.name}: completed`);
      return;
    }
    await this.compensate(saga, context, await this.journal.steps(job.jobId), lease, job);
  }

  /**
   * Runs every step not done, each once the steps it needs are done; those
   * ready together run at once where the journal allows it. A step that
   * fails stops new starts; the ones running are let finish (never left
   * running behind the job). True when every step is done, false when one
   * before the pivot failed (to be compensated); a step deferred, a lost
   * lease or a failure past the pivot is thrown once nothing runs.
   */
  private async forward<C, P extends object>(
    saga: SagaDefinition<C, P>,
    context: C,
    rows: SagaStepRow[],
    needs: number[][],
    pivot: number,
    lease: JournalLease,
    job: JobContext,
  ): Promise<boolean> {
    const done = new Set(rows.flatMap((r, index) => (r.state === 'done' ? [index] : [])));
    const running = new Map<number, Promise<void>>();
    let failed = false;
    const thrown: unknown[] = [];
    const start = (index: number) => {
      const step = saga.steps[index]!;
      const run = (async () => {
        const outcome = await this.attempt(saga, index, lease, job, (io) => step.execute(context, io));
        if (outcome.ok) {
          await this.journal.finish(lease, index, 'done', { ...outcome, error: null });
          done.add(index);
          return;
        }
        if (index >= pivot) {
          // Past the point of no return: keep the step running in the journal and let the queue retry forward.
          await this.journal.note(lease, index, outcome.error, outcome.output);
          throw new SagaForwardRetryError(saga.name, step.name, outcome.error);
        }
        await this.journal.finish(lease, index, 'failed', outcome);
        failed = true;
      })()
        .catch((error: unknown) => {
          thrown.push(error);
        })
        .finally(() => running.delete(index));
      running.set(index, run);
    };
    for (;;) {
      if (!failed && thrown.length === 0) {
        for (let index = 0; index < saga.steps.length; index++) {
          if (done.has(index) || running.has(index) || !needs[index]!.every((n) => done.has(n))) continue;
          if (running.size > 0 && !this.journal.concurrent) break;
          start(index);
        }
      }
      if (running.size === 0) break;
      await Promise.race(running.values());
    }
    // A lost lease first (nothing more may be written), then a failure to undo, then a deferral or a forward retry.
    const lost = thrown.find((e) => e instanceof LeaseLostError);
    if (lost) throw lost;
    if (failed) return false;
    if (thrown.length > 0) throw thrown[0];
    return true;
  }
  /** Undoes, newest first, every step that ran or may have run; then ends the job with the failure. */
  private async compensate<C, P extends object>(
    saga: SagaDefinition<C, P>,
    context: C,
    rows: SagaStepRow[],
    lease: JournalLease,
    job: JobContext,
  ): Promise<never> {
    const failed = failurePoint(rows);
    const failure = `${failed.step}: ${failed.error}`;
    job.log(`${saga.name}: compensating after ${failure}`);
    for (let index = rows.length - 1; index >= 0; index--) {
      const row = rows[index]!;
      // Never ran: nothing to undo. Already undone: done. Past the pivot never gets here.
      if (row.state === 'pending' || row.state === 'compensated') continue;
      const step = saga.steps[index]!;
      await this.journal.start(lease, index, 'compensating');
      const outcome = await this.tries(saga, index, job, (io) => step.compensate(context, io), 'compensate');
      if (!outcome.ok) {
        await this.journal.note(lease, index, outcome.error, outcome.output);
        throw new SagaNeedsAttentionError(saga.name, step.name, outcome.error);
      }
      await this.journal.finish(lease, index, 'compensated', { durationMs: outcome.durationMs, output: outcome.output });
    }
    await saga.onCompensated?.(context, failure);
    throw new SagaCompensatedError(saga.name, failed.step, failed.error);
  }

  /** Journals the start, then tries the step. */
  private async attempt<P extends object, C>(
    saga: SagaDefinition<C, P>,
    index: number,
    lease: JournalLease,
    job: JobContext,
    effect: (io: StepIO) => Promise<void>,
  ): Promise<{ ok: boolean; error: string; output: string; durationMs: number }> {
    await this.journal.start(lease, index, 'running');
    return this.tries(saga, index, job, effect, 'execute');
  }

  /** A few tries with pauses within this run; output goes to the job and the journal. */
  private async tries<P extends object, C>(
    saga: SagaDefinition<C, P>,
    index: number,
    job: JobContext,
    effect: (io: StepIO) => Promise<void>,
    direction: 'execute' | 'compensate',
  ): Promise<{ ok: boolean; error: string; output: string; durationMs: number }> {
    const name = saga.steps[index]!.name;
    const observe = (outcome: 'ok' | 'failed' | 'deferred') => {
      this.metrics?.sagaStepDuration.observe({ saga: saga.name, step: name, direction, outcome }, (Date.now() - started) / 1000);
      if (outcome === 'failed') this.metrics?.sagaStepFailures.inc({ saga: saga.name, step: name, direction });
    };
    const delays = saga.stepRetryDelaysMs ?? DEFAULT_STEP_RETRY_DELAYS_MS;
    const lines: string[] = [];
    const io: StepIO = {
      signal: job.signal,
      log: (line) => {
        lines.push(line);
        job.log(`[${name}] ${line}`);
      },
    };
    const started = Date.now();
    let error = '';
    for (let attempt = 0; attempt <= delays.length; attempt++) {
      if (job.signal.aborted) throw job.signal.reason instanceof Error ? job.signal.reason : new LeaseLostError(job.jobId);
      try {
        await effect(io);
        observe('ok');
        return { ok: true, error: '', output: lines.join('\n'), durationMs: Date.now() - started };
      } catch (e) {
        // Lost: nothing of ours may be written. Deferred: the step waits for other work and runs again later.
        if (e instanceof LeaseLostError) throw e;
        if (e instanceof JobDeferredError) {
          observe('deferred');
          lines.push(`waiting: ${e.message}`);
          throw e;
        }
        error = message(e);
        job.error(`[${name}] ${error}`);
        lines.push(`error: ${error}`);
        // Trying the same thing again cannot help (a failing SQL statement): give up at once, with this error.
        if (isPermanent(e)) break;
        if (attempt < delays.length) await sleep(delays[attempt]!, job.signal);
      }
    }
    observe('failed');
    return { ok: false, error, output: lines.join('\n'), durationMs: Date.now() - started };
  }
}

/**
 * Where the forward run stopped, with the error it failed with: the step
 * that failed; once compensated (its state changed), the last step that ran
 * with an error (steps that ran beside it may have ended well after it; a
 * step that ended well has none); else the last step that ran.
 */
function failurePoint(rows: SagaStepRow[]): { step: string; error: string } {
  const ran = rows.filter((r) => r.state !== 'pending');
  const point = ran.find((r) => r.state === 'failed') ?? [...ran].reverse().find((r) => r.error) ?? ran[ran.length - 1];
  return { step: point?.stepName ?? '?', error: point?.error ?? 'unknown error' };
}

/**
 * Per step, the indices of the steps it needs: those its `after` names
 * (earlier steps only), else the step before it. A step at or past the pivot
 * needs every step before it: nothing is mailed before everything is done.
 */
export function stepNeeds(saga: Pick<SagaDefinition<unknown>, 'name' | 'steps'>, pivot: number): number[][] {
  return saga.steps.map((step, index) => {
    if (index >= pivot) return Array.from({ length: index }, (_, i) => i);
    if (!step.after) return index === 0 ? [] : [index - 1];
    return step.after.map((name) => {
      const need = saga.steps.findIndex((s) => s.name === name);
      if (need < 0 || need >= index) throw new Error(`${saga.name}: step ${step.name} needs ${name}, which is not a step before it`);
      return need;
    });
  });
}

/** An error that says so (`permanent: true`, e.g. a failing SQL statement) is not tried again within the run. */
function isPermanent(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { permanent?: unknown }).permanent === true;
}

function isFullyCompensated(rows: SagaStepRow[]): boolean {
  return rows.some((r) => r.state === 'compensated') && rows.every((r) => r.state === 'compensated' || r.state === 'pending');
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}
