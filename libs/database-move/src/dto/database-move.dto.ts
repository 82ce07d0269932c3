import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsBoolean, IsInt, IsOptional, Max, Min } from 'class-validator';
import { DATABASE_MOVE_ITEM_STATES, DATABASE_MOVE_STATES, type DatabaseMove, type DatabaseMoveItem } from '@app/catalog';

export const MAX_MOVE_CONCURRENCY = 128;
export const DEFAULT_MOVE_CONCURRENCY = 64;

export class MoveDatabaseDto {
  @ApiProperty({ description: 'the database server the installs are on now (server id)' })
  @IsInt()
  @Min(1)
  from: number;

  @ApiProperty({ description: 'the database server they move to (server id): every tenant database and user must be there already (a replica)' })
  @IsInt()
  @Min(1)
  to: number;

  @ApiPropertyOptional({ description: `installs moved at once (1-${MAX_MOVE_CONCURRENCY}, default ${DEFAULT_MOVE_CONCURRENCY})` })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(MAX_MOVE_CONCURRENCY)
  concurrency?: number;

  @ApiPropertyOptional({ description: 'answer the diff of every config file that would change, and the preconditions that fail; change nothing' })
  @IsOptional()
  @IsBoolean()
  dryRun?: boolean;
}

export class DatabaseMoveQueuedView {
  @ApiProperty({ description: 'GET /v1/database-servers/moves/:moveId' }) moveId: number;
  @ApiProperty({ description: 'the parent job (GET /v1/jobs/:id)' }) jobId: number;
  @ApiProperty() from: string;
  @ApiProperty() to: string;
  @ApiProperty({ type: [Number] }) installIds: number[];
}

export class ConfigFileDiffView {
  @ApiProperty() server: string;
  @ApiProperty() path: string;
  @ApiProperty({ description: 'unified diff (passwords masked); empty: unchanged' }) diff: string;
}

export class DatabaseMovePlanInstall {
  @ApiProperty() installId: number;
  @ApiProperty() fsName: string;
  @ApiProperty({ type: [ConfigFileDiffView] }) files: ConfigFileDiffView[];
}

export class DatabaseMovePlanView {
  @ApiProperty() dryRun: true;
  @ApiProperty() from: string;
  @ApiProperty() to: string;
  @ApiProperty({ type: [String], description: 'preconditions that fail (a real move is refused while any does)' }) problems: string[];
  @ApiProperty({ type: [DatabaseMovePlanInstall] }) installs: DatabaseMovePlanInstall[];
}

export class DatabaseMoveItemView {
  @ApiProperty() installId: number;
  @ApiProperty({ enum: DATABASE_MOVE_ITEM_STATES }) state: string;
  @ApiPropertyOptional({ type: Number, nullable: true }) jobId: number | null;
  @ApiProperty({ description: 'config files written (every template on every server with a copy)' }) filesRendered: number;
  @ApiProperty() cachesCleared: boolean;
  @ApiPropertyOptional({ type: String, nullable: true }) error: string | null;
  @ApiPropertyOptional({ type: String, nullable: true }) startedAt: string | null;
  @ApiPropertyOptional({ type: String, nullable: true }) finishedAt: string | null;
}

export class DatabaseMoveReportView {
  @ApiProperty() id: number;
  @ApiProperty() fromServerId: number;
  @ApiProperty() toServerId: number;
  @ApiProperty({ enum: DATABASE_MOVE_STATES }) state: string;
  @ApiProperty() concurrency: number;
  @ApiPropertyOptional({ type: Number, nullable: true }) jobId: number | null;
  @ApiProperty() requestedBy: string;
  @ApiPropertyOptional({ type: String, nullable: true }) startedAt: string | null;
  @ApiPropertyOptional({ type: String, nullable: true }) finishedAt: string | null;
  @ApiPropertyOptional({ type: String, nullable: true }) error: string | null;
  @ApiProperty({ description: 'items per state', example: { total: 50, pending: 0, running: 0, done: 50, failed: 0, skipped: 0 } }) counts: Record<string, number>;
  @ApiProperty({ type: [DatabaseMoveItemView] }) items: DatabaseMoveItemView[];

  static of(move: DatabaseMove, items: DatabaseMoveItem[]): DatabaseMoveReportView {
    const counts: Record<string, number> = { total: items.length, pending: 0, running: 0, done: 0, failed: 0, skipped: 0 };
    for (const item of items) counts[item.state] = (counts[item.state] ?? 0) + 1;
    const iso = (d: Date | null) => (d ? new Date(d).toISOString() : null);
    return Object.assign(new DatabaseMoveReportView(), {
      id: move.id,
      fromServerId: move.fromServerId,
      toServerId: move.toServerId,
      state: move.state,
      concurrency: move.concurrency,
      jobId: move.jobId,
      requestedBy: move.requestedBy,
      startedAt: iso(move.startedAt),
      finishedAt: iso(move.finishedAt),
      error: move.error,
      counts,
      items: items.map((i) =>
        Object.assign(new DatabaseMoveItemView(), {
          installId: i.installId, state: i.state, jobId: i.jobId, filesRendered: i.filesRendered, cachesCleared: i.cachesCleared, error: i.error, startedAt: iso(i.startedAt), finishedAt: iso(i.finishedAt),
        }),
      ),
    });
  }
}
