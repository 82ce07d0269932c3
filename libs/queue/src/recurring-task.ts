import { Logger, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';

export interface RecurringTaskOptions {
  /** Logger context. */
  name: string;
  everyMs: number;
  /** Whether this engine runs it (the worker role). */
  enabled: boolean;
  /** Logged, with the error, when a run fails. */
  failure: string;
}

/** What the metrics and /health read of a task running in this process. */
export interface RecurringTaskState {
  name: string;
  everyMs: number;
  /** When this process started running it (epoch ms). */
  startedAt: number;
  lastSuccessAt: number | null;
  lastFailureAt: number | null;
}

const running = new Set<RecurringTaskState>();

/** The recurring tasks this process runs now (several engines in one process: each its own). */
export function recurringTaskStates(): RecurringTaskState[] {
  return [...running];
}

/**
 * Work an engine repeats every few seconds: never two runs at once in one
 * process, a failed run logged and tried again next time, the run in
 * progress awaited at shutdown. Safe on several engines when `tick` is.
 */
export abstract class RecurringTask implements OnApplicationBootstrap, BeforeApplicationShutdown {
  protected readonly logger: Logger;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private readonly state: RecurringTaskState;

  protected constructor(private readonly options: RecurringTaskOptions) {
    this.logger = new Logger(options.name);
    this.state = { name: options.name, everyMs: options.everyMs, startedAt: Date.now(), lastSuccessAt: null, lastFailureAt: null };
  }

  protected abstract tick(): Promise<void>;

  onApplicationBootstrap(): void {
    if (!this.options.enabled) return;
    this.state.startedAt = Date.now();
    running.add(this.state);
    this.timer = setInterval(() => {
      if (this.running) return;
      this.running = this.tick()
        .then(
          () => void (this.state.lastSuccessAt = Date.now()),
          (error: unknown) => {
            this.state.lastFailureAt = Date.now();
            this.logger.error({ err: error }, this.options.failure);
          },
        )
        .finally(() => (this.running = null));
    }, this.options.everyMs);
    this.timer.unref();
  }

  async beforeApplicationShutdown(): Promise<void> {
    running.delete(this.state);
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }
}
