import { Injectable } from '@nestjs/common';
import { JobHandler, type JobContext } from './job-handler.decorator.js';
import { defineJobKind } from './job-kind.js';

/** A job that does nothing but say so: end-to-end probe of the queue, and the benchmark's unit of work. */
export const NOOP_JOB = defineJobKind<{ note?: string; sleepMs?: number }>('engine.noop', { maxAttempts: 3 });

@Injectable()
export class NoopJobHandler {
  @JobHandler(NOOP_JOB)
  async run(payload: { note?: string; sleepMs?: number }, context: JobContext): Promise<void> {
    if (payload.sleepMs) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(payload.sleepMs ?? 0, 60_000));
        context.signal.addEventListener('abort', () => clearTimeout(timer), { once: true });
      });
    }
    context.log(`noop${payload.note ? `: ${payload.note}` : ''}`);
  }
}
