import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { JOB_STATES, type Job, type JobLog, type JobState } from '@app/catalog';
import type { QueueStats } from '../job.repository.js';

const iso = (d: Date | null | undefined) => (d ? d.toISOString() : null);

export class JobView {
  @ApiProperty() id: number;
  @ApiProperty() kind: string;
  @ApiProperty({ enum: JOB_STATES }) state: JobState;
  @ApiProperty({ type: Object }) payload: Record<string, unknown>;
  @ApiProperty() priority: number;
  @ApiProperty() attempts: number;
  @ApiProperty() maxAttempts: number;
  @ApiProperty() runAfter: string;
  @ApiPropertyOptional({ type: String, nullable: true }) leaseOwner: string | null;
  @ApiPropertyOptional({ type: String, nullable: true }) leaseExpiresAt: string | null;
  @ApiPropertyOptional({ type: String, nullable: true }) idempotencyKey: string | null;
  @ApiPropertyOptional({ type: String, nullable: true }) resourceKey: string | null;
  @ApiPropertyOptional({ type: Number, nullable: true }) parentId: number | null;
  @ApiPropertyOptional({ type: String, nullable: true }) lastError: string | null;
  @ApiProperty() createdAt: string;
  @ApiPropertyOptional({ type: String, nullable: true }) startedAt: string | null;
  @ApiPropertyOptional({ type: String, nullable: true }) finishedAt: string | null;

  static of(job: Job): JobView {
    return {
      id: job.id,
      kind: job.kind,
      state: job.state,
      payload: job.payload,
      priority: job.priority,
      attempts: job.attempts,
      maxAttempts: job.maxAttempts,
      runAfter: job.runAfter.toISOString(),
      leaseOwner: job.leaseOwner,
      leaseExpiresAt: iso(job.leaseExpiresAt),
      idempotencyKey: job.idempotencyKey,
      resourceKey: job.resourceKey,
      parentId: job.parentId,
      lastError: job.lastError,
      createdAt: job.createdAt.toISOString(),
      startedAt: iso(job.startedAt),
      finishedAt: iso(job.finishedAt),
    };
  }
}

export class JobLineView {
  @ApiProperty() id: number;
  @ApiProperty() attempt: number;
  @ApiProperty({ enum: ['info', 'error'] }) level: 'info' | 'error';
  @ApiProperty() line: string;
  @ApiProperty() at: string;

  static of(line: JobLog): JobLineView {
    return { id: line.id, attempt: line.attempt, level: line.level, line: line.line, at: line.createdAt.toISOString() };
  }
}

export class QueueStatsView {
  @ApiProperty({ type: Object, example: { ready: 3, blocked: 0, running: 1, done: 120, dead: 2, cancelled: 0 } })
  byState: Record<JobState, number>;
  @ApiProperty({ description: 'Seconds the oldest due job has waited' }) oldestReadyAgeSeconds: number;

  static of(stats: QueueStats): QueueStatsView {
    return { byState: stats.byState, oldestReadyAgeSeconds: stats.oldestReadyAgeSeconds };
  }
}
