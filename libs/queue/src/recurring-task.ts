import { Logger } from '@nestjs/common';

export interface RecurringTaskOptions {
  /** Unique among tasks: the schedule's row, the job's keys, the snippets (`tasks:run NAME`) and the metrics use it. */
  name: string;
  /** Every this many milliseconds, whole seconds (ticks at multiples of it since the epoch, the same on every engine). */
  everyMs?: number;
  /** Or a cron expression in UTC (five fields, or six with seconds first), read by croner. */
  schedule?: string;
  /** False: never scheduled (the default is true). */
  enabled?: boolean;
  /** Logged and recorded, with the error, when a run fails. */
  failure: string;
}

/** What a task's run may print: kept with its job (`tasks:run` streams it). */
export interface TaskRunContext {
  readonly jobId: number;
  /** The tick this run is for. */
  readonly tick: Date;
  readonly signal: AbortSignal;
  log(line: string): void;
}

const NAME = /^[A-Za-z][A-Za-z0-9-]{0,63}$/;

/**
 * Work the engine repeats on a schedule (the seed's crons). A task only
 * declares its schedule and what one run does: engines with the `cron`
 * role queue each due tick as a queue job (once per tick across every
 * engine, never two runs of a task at once, a missed tick after downtime
 * run once), and workers run it (libs/tasks). A failed run is recorded and
 * the next tick tries again.
 */
export abstract class RecurringTask {
  protected readonly logger: Logger;

  protected constructor(readonly options: RecurringTaskOptions) {
    if (!NAME.test(options.name)) throw new Error(`recurring task name ${JSON.stringify(options.name)}: letters, digits and dashes, from a letter, at most 64`);
    if ((options.everyMs === undefined) === (options.schedule === undefined)) {
      throw new Error(`recurring task ${options.name}: give everyMs or schedule, one of them`);
    }
    if (options.everyMs !== undefined && !(Number.isInteger(options.everyMs) && options.everyMs >= 1000 && options.everyMs % 1000 === 0)) {
      throw new Error(`recurring task ${options.name}: everyMs must be whole seconds (a multiple of 1000), at least 1000`);
    }
    this.logger = new Logger(options.name);
  }

  get name(): string {
    return this.options.name;
  }

  /** One run. */
  protected abstract tick(context: TaskRunContext): Promise<void>;

  /** Called by the task's job: one run, for `context.tick`. */
  run(context: TaskRunContext): Promise<void> {
    return this.tick(context);
  }
}
