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

/**
 * Work an engine repeats every few seconds: never two runs at once in one
 * process, a failed run logged and tried again next time, the run in
 * progress awaited at shutdown. Safe on several engines when `tick` is.
 */
export abstract class RecurringTask implements OnApplicationBootstrap, BeforeApplicationShutdown {
  protected readonly logger: Logger;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;

  protected constructor(private readonly options: RecurringTaskOptions) {
    this.logger = new Logger(options.name);
  }

  protected abstract tick(): Promise<void>;

  onApplicationBootstrap(): void {
    if (!this.options.enabled) return;
    this.timer = setInterval(() => {
      if (this.running) return;
      this.running = this.tick()
        .catch((error: unknown) => this.logger.error({ err: error }, this.options.failure))
        .finally(() => (this.running = null));
    }, this.options.everyMs);
    this.timer.unref();
  }

  async beforeApplicationShutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }
}
