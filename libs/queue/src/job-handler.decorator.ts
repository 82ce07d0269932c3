import { SetMetadata } from '@nestjs/common';
import type { JobKind } from './job-kind.js';

export const JOB_HANDLER = 'queue:job-handler';

/** What a handler is given besides its payload. */
export interface JobContext {
  readonly jobId: number;
  /** This claim's attempt number, from 1. */
  readonly attempt: number;
  readonly maxAttempts: number;
  /** The claim's fence: writes that must not outlive the lease carry it (the saga journal does). */
  readonly fence: number;
  /** Aborted when the worker lost the job (lease expired, cancelled) or shuts down. */
  readonly signal: AbortSignal;
  /** A line of output, kept with the job in order and tailable while it runs. */
  log(line: string): void;
  error(line: string): void;
}

export type JobHandlerFn<P extends object = Record<string, unknown>> = (payload: P, context: JobContext) => Promise<void>;

/** Marks a provider method as the handler of a job kind (one handler per kind). */
export const JobHandler = (kind: JobKind<object>) => SetMetadata(JOB_HANDLER, kind.name);
