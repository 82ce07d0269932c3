import { randomBytes } from 'node:crypto';
import { redactSecrets, withAbortSignal, withSecretScope } from '@app/common';
import { Inject, Injectable, Logger, Optional, type OnApplicationBootstrap, type BeforeApplicationShutdown } from '@nestjs/common';
import { Metrics } from '@app/metrics';
import { settleFailedRun } from './job-failure.js';
import { JobHandlerRegistry } from './job-handler.registry.js';
import { JobOutput } from './job-output.js';
import { JobRepository, type ClaimedJob } from './job.repository.js';
import { LeaseHeartbeat, leaseTimings } from './lease-heartbeat.js';
import { currentProcessPlace, formatLeaseOwner, isDeadHolderHere, processAlive } from './lease-owner.js';
import { QueueService } from './queue.service.js';
import { QueueWakeups } from './queue-wakeups.js';
import { JobDeferredError, LeaseLostError, PermanentJobError } from './queue.errors.js';

export interface QueueWorkerOptions {
  /** Jobs run at once by this process; never more are claimed. */
  concurrency: number;
  /** Pause between claims when there was nothing to do. */
  pollMs: number;
  /**
   * How often this worker takes back the jobs of dead holders (expired
   * leases; holders on its own host whose process is gone) and unblocks
   * orphaned jobs. It also does so once as it starts.
   */
  reapEveryMs: number;
  /**
   * The address this worker takes wake-ups on (UDP, a port the system
   * picks), for jobs other processes enqueue; null or absent: none, it
   * learns of them at its next poll.
   */
  wakeAddress?: string | null;
}

export const QUEUE_WORKER_OPTIONS = Symbol('QUEUE_WORKER_OPTIONS');

/**
 * The first idle poll after a claim that found work: work comes in bursts
 * (another process enqueueing a saga's next jobs, a batch of orders), so a
 * worker that was just busy looks again soon, then less often (doubling) up
 * to the poll interval. A handful of empty claims per busy spell.
 */
const FIRST_IDLE_POLL_MS = 50;

/** Owners of the workers of this process that have not stopped: a holder with this pid but not in here is a predecessor. */
const workersOfThisProcess = new Set<string>();

/**
 * Claims jobs and runs their handlers. The catalog is the only truth: a
 * worker can die at any instruction. Its jobs are taken back by any
 * worker's reaper when their leases expire (seconds: leases are short and
 * renewed), and at once by a worker of the same host that sees its process
 * gone (a restarted engine takes back its predecessor's jobs as it starts).
 */
@Injectable()
export class QueueWorker implements OnApplicationBootstrap, BeforeApplicationShutdown {
  readonly owner = formatLeaseOwner(currentProcessPlace(), randomBytes(3).toString('hex'));
  private readonly logger = new Logger('QueueWorker');
  /**
   * Running executions by claim (`id:fence`), not by job: a stalled execution
   * fenced off and a new claim of the same job can both be in this process.
   */
  private readonly active = new Map<string, { abort: AbortController; done: Promise<void> }>();
  private stopping = false;
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private lastReap = 0;
  /** The next idle pause when shorter than the poll interval (after work); 0 once it has grown back to it. */
  private idlePollMs = 0;

  constructor(
    private readonly jobs: JobRepository,
    private readonly handlers: JobHandlerRegistry,
    private readonly queue: QueueService,
    @Inject(QUEUE_WORKER_OPTIONS) private readonly options: QueueWorkerOptions,
    @Optional() private readonly metrics?: Metrics,
    @Optional() private readonly wakeups?: QueueWakeups,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    // A job enqueued by this process (a build step asking for an nginx rebuild) is claimed at once; one enqueued by another process too, when it can send a wake-up.
    this.queue.onEnqueued(() => this.wake?.());
    if (this.options.wakeAddress && this.wakeups) {
      // Best effort: a worker that cannot listen (the address is not this machine's) polls, as it would without.
      await this.wakeups.listen(this.owner, this.options.wakeAddress, () => this.wake?.()).catch((error: Error) => this.logger.warn(`no wake-ups on ${this.options.wakeAddress}: ${error.message}; claiming at each poll only`));
    }
    workersOfThisProcess.add(this.owner);
    this.loop = this.run().finally(() => workersOfThisProcess.delete(this.owner));
  }

  /**
   * Stops claiming, tells running handlers to stop, and waits for them a
   * little. Before any shutdown hook: the catalog connection closes in one.
   */
  async beforeApplicationShutdown(): Promise<void> {
    this.stopping = true;
    await this.wakeups?.stopListening();
    this.wake?.();
    for (const job of this.active.values()) job.abort.abort(new Error('the worker is shutting down'));
    await this.loop;
  }

  get running(): number {
    return this.active.size;
  }

  private async run(): Promise<void> {
    this.logger.log(`worker ${this.owner} started (${this.options.concurrency} slots)`);
    while (!this.stopping) {
      let claimed: ClaimedJob[] = [];
      let claimedAt = Date.now();
      try {
        // The first pass reaps before claiming: a restarted engine takes back its predecessor's jobs first.
        if (Date.now() - this.lastReap >= this.options.reapEveryMs) await this.reap();
        const free = this.options.concurrency - this.active.size;
        claimedAt = Date.now();
        claimed = await this.jobs.claim(this.owner, free, (kind) => this.handlers.options(kind).leaseMs);
      } catch (error) {
        this.logger.error({ err: error }, 'claiming jobs failed; retrying');
      }
      for (const job of claimed) this.start(job, claimedAt);
      if (claimed.length > 0) this.idlePollMs = Math.min(FIRST_IDLE_POLL_MS, this.options.pollMs);
      if (this.stopping) break;
      // Sleep when idle or full; a finishing job wakes the loop at once.
      if (claimed.length === 0 || this.active.size >= this.options.concurrency) {
        const pauseMs = claimed.length === 0 ? this.nextIdlePause() : this.options.pollMs;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, pauseMs * (0.75 + Math.random() / 2));
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.wake = null;
      }
    }
    await Promise.allSettled([...this.active.values()].map((j) => j.done));
  }

  /** The pause after a claim that found nothing: short right after work, then doubling up to the poll interval. */
  private nextIdlePause(): number {
    const pauseMs = this.idlePollMs || this.options.pollMs;
    this.idlePollMs = this.idlePollMs && this.idlePollMs * 2 < this.options.pollMs ? this.idlePollMs * 2 : 0;
    return pauseMs;
  }

  private async reap(): Promise<void> {
    this.lastReap = Date.now();
    // Orphans first: a job taken back below keeps its resource key's turn, ahead of the jobs blocked behind it.
    const unblocked = await this.jobs.promoteOrphanedBlocked();
    const expired = await this.jobs.reapExpired();
    const gone: string[] = [];
    const fromDead = { requeued: 0, buried: 0 };
    const here = currentProcessPlace();
    const probe = { isAlive: processAlive, isLiveOwnerHere: (owner: string) => workersOfThisProcess.has(owner) };
    for (const owner of await this.jobs.runningOwners()) {
      if (!isDeadHolderHere(owner, here, probe)) continue;
      gone.push(owner);
      const taken = await this.jobs.reclaimFromDeadOwner(owner);
      fromDead.requeued += taken.requeued;
      fromDead.buried += taken.buried;
    }
    if (gone.length > 0) {
      this.logger.warn({ ...fromDead, owners: gone }, 'took back the jobs of workers of this host whose process is gone');
    }
    if (expired.requeued + expired.buried + unblocked > 0) {
      this.logger.warn({ ...expired, unblocked }, 'reclaimed jobs whose lease expired (dead or stalled workers)');
    }
  }

  private start(job: ClaimedJob, claimedAt: number): void {
    const abort = new AbortController();
    const claim = `${job.id}:${job.fence}`;
    // The job's own scopes: every server command it starts dies with its lease (abort signal), and no secret it handles is shown (redaction).
    const done = withSecretScope(() => withAbortSignal(abort.signal, () => this.execute(job, abort, claimedAt))).finally(() => {
      this.active.delete(claim);
      this.wake?.();
    });
    this.active.set(claim, { abort, done });
  }

  private async execute(job: ClaimedJob, abort: AbortController, claimedAt: number): Promise<void> {
    const handler = this.handlers.get(job.kind);
    if (!handler) {
      await this.jobs.bury(job.id, job.fence, `no handler for job kind "${job.kind}" in this engine build`, job.resourceKey);
      return;
    }
    const { leaseMs } = handler.options;
    const output = new JobOutput(this.jobs, job.id, job.attempts, (error) => this.logger.warn({ err: error, jobId: job.id }, 'output lines of the job could not be written'));
    const heartbeat = new LeaseHeartbeat(
      () => this.jobs.renew(job.id, job.fence, leaseMs),
      (why) =>
        abort.abort(
          new LeaseLostError(job.id, why === 'taken' ? 'expired and reclaimed, or cancelled' : `no renewal got through for ${leaseMs} ms`),
        ),
      (error) => this.logger.warn({ err: error, jobId: job.id }, 'lease renewal failed; retrying soon'),
      leaseTimings(leaseMs),
      claimedAt,
    );
    heartbeat.start();
    const context = output.context(job, abort.signal);
    const aborted = new Promise<never>((_, reject) =>
      abort.signal.addEventListener('abort', () => reject(abort.signal.reason), { once: true }),
    );
    aborted.catch(() => undefined);
    const started = process.hrtime.bigint();
    let outcome = 'done';
    try {
      // A handler that ignores its signal cannot hold the slot once the job is lost.
      await Promise.race([handler.run(job.payload, context), aborted]);
      await output.flush();
      if (!(await this.jobs.complete(job.id, job.fence, job.resourceKey))) {
        outcome = 'lost';
        this.logger.warn({ jobId: job.id }, 'finished, but the lease was lost meanwhile: result discarded');
      }
    } catch (error) {
      outcome = await this.failed(job, error, abort.signal, output, handler.options.backoff);
    } finally {
      heartbeat.stop();
      await output.close();
      this.metrics?.jobDuration.observe({ kind: job.kind, outcome }, Number(process.hrtime.bigint() - started) / 1e9);
    }
  }

  private async failed(
    job: ClaimedJob,
    error: unknown,
    signal: AbortSignal,
    output: JobOutput,
    backoff: { baseMs: number; maxMs: number },
  ): Promise<'lost' | 'deferred' | 'dead' | 'retry'> {
    const message = redactSecrets(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
    if (signal.aborted && signal.reason instanceof LeaseLostError) {
      // Someone else owns the job now; any write of ours would be refused by the fence anyway.
      this.logger.warn({ jobId: job.id }, message);
      return 'lost';
    }
    if (error instanceof JobDeferredError) {
      output.write('info', `deferred ${error.delayMs} ms: ${error.message}`);
    } else {
      output.write('error', message);
      if (error instanceof PermanentJobError && error.needsAttention) this.logger.error({ jobId: job.id, kind: job.kind }, `job ${job.id} needs attention: ${message}`);
    }
    await output.flush();
    return settleFailedRun(this.jobs, job, error, message, backoff);
  }
}
