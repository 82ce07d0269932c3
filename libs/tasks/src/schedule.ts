import { Cron } from 'croner';

/** A task's schedule: every N milliseconds since the epoch, or a cron expression in UTC. */
export class TaskSchedule {
  private readonly cron: Cron | null;

  constructor(private readonly spec: { everyMs?: number; schedule?: string }) {
    if (spec.schedule !== undefined) {
      try {
        this.cron = new Cron(spec.schedule, { timezone: 'UTC', paused: true });
      } catch (error) {
        throw new Error(`cron expression ${JSON.stringify(spec.schedule)}: ${error instanceof Error ? error.message : String(error)}`);
      }
    } else if (spec.everyMs !== undefined && spec.everyMs >= 1000) {
      this.cron = null;
    } else {
      throw new Error('a schedule needs everyMs (at least 1000) or a cron expression');
    }
  }

  /** `every 10 s` or the cron expression. */
  describe(): string {
    return this.cron ? this.spec.schedule! : `every ${this.spec.everyMs! / 1000} s`;
  }

  /** The latest tick at or before `now`: the same instant on every engine. */
  latestTick(now: Date): Date {
    if (!this.cron) return new Date(Math.floor(now.getTime() / this.spec.everyMs!) * this.spec.everyMs!);
    // previousRuns is strictly before its (second-truncated) reference: one second on includes `now`'s own second.
    const [tick] = this.cron.previousRuns(1, new Date(now.getTime() + 1000));
    return tick && tick.getTime() <= now.getTime() ? tick : this.cron.previousRuns(1, now)[0]!;
  }

  /** The tick after `tick`. */
  nextTick(after: Date): Date {
    if (!this.cron) return new Date((Math.floor(after.getTime() / this.spec.everyMs!) + 1) * this.spec.everyMs!);
    return this.cron.nextRun(after)!;
  }

  /** Milliseconds between two ticks around `at` (a cron schedule's gaps may differ: the one that follows). */
  intervalMs(at: Date = new Date()): number {
    if (!this.cron) return this.spec.everyMs!;
    const [a, b] = this.cron.nextRuns(2, at);
    return a && b ? b.getTime() - a.getTime() : 24 * 60 * 60_000;
  }
}
