import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsBoolean, IsInt, IsOptional, IsString, Matches, Max, Min } from 'class-validator';
import { CODE_UPDATE_ITEM_STATES, CODE_UPDATE_KINDS, CODE_UPDATE_STATES, type CodeUpdate, type CodeUpdateItem } from '@app/catalog';
import { REVISION } from '@app/codebases';

export const MAX_ROLLOUT_CONCURRENCY = 32;
export const DEFAULT_ROLLOUT_CONCURRENCY = 4;

export class StartRolloutDto {
  @ApiProperty({ example: 'v2.4.0', description: 'commit, tag or branch of the group\'s repository to roll the group to' })
  @IsString()
  @Matches(REVISION, { message: 'revision must be a commit, tag or branch name' })
  revision: string;

  @ApiPropertyOptional({ description: 'the install updated first (a live install of the group); default: the group\'s newest live install' })
  @IsOptional()
  @IsInt()
  @Min(1)
  canaryInstallId?: number;

  @ApiPropertyOptional({ description: `installs updated at once after the canary (1-${MAX_ROLLOUT_CONCURRENCY}, default ${DEFAULT_ROLLOUT_CONCURRENCY})` })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(MAX_ROLLOUT_CONCURRENCY)
  concurrency?: number;

  @ApiPropertyOptional({ description: 'answer the plan (installs, SQL files each would run, tree changes) and change nothing' })
  @IsOptional()
  @IsBoolean()
  dryRun?: boolean;
}

export class RollbackDto {
  @ApiPropertyOptional({ description: 'answer the plan and change nothing' })
  @IsOptional()
  @IsBoolean()
  dryRun?: boolean;
}

export class RolloutQueuedView {
  @ApiProperty({ description: 'GET /v1/code-groups/:id/updates/:updateId' }) updateId: number;
  @ApiProperty({ description: 'the parent job (GET /v1/jobs/:id)' }) jobId: number;
  @ApiProperty({ enum: CODE_UPDATE_KINDS }) kind: string;
  @ApiPropertyOptional({ type: Number, nullable: true }) canaryInstallId: number | null;
  @ApiProperty({ type: [Number] }) installIds: number[];
}

export class TreeChangesView {
  @ApiProperty({ type: [String], description: 'copies the new manifest adds (made in homes that lack them)' }) copies: string[];
  @ApiProperty({ type: [String] }) writable: string[];
  @ApiProperty({ type: [String], description: 'template targets it adds' }) templates: string[];
  @ApiProperty({ type: [String], description: 'secrets it adds (generated per install)' }) secrets: string[];
  @ApiProperty({ type: [String] }) links: string[];
}

export class RolloutPlanInstall {
  @ApiProperty() installId: number;
  @ApiProperty() fsName: string;
  @ApiProperty() canary: boolean;
  @ApiProperty({ description: 'the release it is on now' }) revision: string;
  @ApiProperty({ type: [String], description: 'SQL update files it would run, in order (those not in its database_updates)' }) sqlFiles: string[];
}

export class RolloutPlanView {
  @ApiProperty() dryRun: true;
  @ApiProperty({ enum: CODE_UPDATE_KINDS }) kind: string;
  @ApiProperty() groupId: number;
  @ApiProperty() fromRevision: string;
  @ApiProperty({ description: 'the commit the revision names' }) toRevision: string;
  @ApiPropertyOptional({ type: Number, nullable: true }) canaryInstallId: number | null;
  @ApiProperty() concurrency: number;
  @ApiProperty({ type: TreeChangesView }) treeChanges: TreeChangesView;
  @ApiProperty({ type: [RolloutPlanInstall] }) installs: RolloutPlanInstall[];
}

export class RolloutItemView {
  @ApiProperty() installId: number;
  @ApiProperty() canary: boolean;
  @ApiProperty({ enum: CODE_UPDATE_ITEM_STATES }) state: string;
  @ApiProperty({ description: 'its links point at the new release' }) switched: boolean;
  @ApiProperty({ description: 'SQL update files applied' }) sqlApplied: number;
  @ApiPropertyOptional({ type: Number, nullable: true }) sqlMs: number | null;
  @ApiProperty() cachesCleared: boolean;
  @ApiPropertyOptional({ type: String, nullable: true, description: 'ok once it answered through every dispatcher' }) probe: string | null;
  @ApiPropertyOptional({ type: String, nullable: true, description: 'why it failed or was skipped (secrets masked)' }) error: string | null;
  @ApiPropertyOptional({ type: String, nullable: true }) errorFile: string | null;
  @ApiPropertyOptional({ type: Number, nullable: true }) errorLine: number | null;
  @ApiPropertyOptional({ type: String, nullable: true }) errorStatement: string | null;
  @ApiPropertyOptional({ type: Number, nullable: true }) jobId: number | null;
  @ApiPropertyOptional({ type: String, nullable: true }) startedAt: string | null;
  @ApiPropertyOptional({ type: String, nullable: true }) finishedAt: string | null;

  static of(item: CodeUpdateItem): RolloutItemView {
    return Object.assign(new RolloutItemView(), {
      installId: item.installId,
      canary: item.canary,
      state: item.state,
      switched: item.switched,
      sqlApplied: item.sqlApplied,
      sqlMs: item.sqlMs,
      cachesCleared: item.cachesCleared,
      probe: item.probe,
      error: item.error,
      errorFile: item.errorFile,
      errorLine: item.errorLine,
      errorStatement: item.errorStatement,
      jobId: item.jobId,
      startedAt: item.startedAt?.toISOString() ?? null,
      finishedAt: item.finishedAt?.toISOString() ?? null,
    });
  }
}

export class RolloutReportView {
  @ApiProperty() id: number;
  @ApiProperty({ enum: CODE_UPDATE_KINDS }) kind: string;
  @ApiProperty() groupId: number;
  @ApiPropertyOptional({ type: String, nullable: true }) fromRevision: string | null;
  @ApiPropertyOptional({ type: String, nullable: true, description: 'the commit once the release is made (before: the revision asked for)' }) toRevision: string | null;
  @ApiProperty({ enum: CODE_UPDATE_STATES, description: 'done: every install updated; failed: some failed (retry them); stopped: the canary failed, the others untouched' }) state: string;
  @ApiPropertyOptional({ type: Number, nullable: true }) canaryInstallId: number | null;
  @ApiProperty() concurrency: number;
  @ApiPropertyOptional({ type: Number, nullable: true }) jobId: number | null;
  @ApiProperty() requestedBy: string;
  @ApiPropertyOptional({ type: String, nullable: true }) startedAt: string | null;
  @ApiPropertyOptional({ type: String, nullable: true }) finishedAt: string | null;
  @ApiPropertyOptional({ type: String, nullable: true }) error: string | null;
  @ApiProperty({ description: 'items per state', example: { total: 12, pending: 0, running: 0, done: 12, failed: 0, skipped: 0 } }) counts: Record<string, number>;
  @ApiProperty({ type: [RolloutItemView] }) items: RolloutItemView[];

  static of(update: CodeUpdate, items: CodeUpdateItem[]): RolloutReportView {
    const counts: Record<string, number> = { total: items.length, pending: 0, running: 0, done: 0, failed: 0, skipped: 0 };
    for (const item of items) counts[item.state] = (counts[item.state] ?? 0) + 1;
    return Object.assign(new RolloutReportView(), {
      id: update.id,
      kind: update.kind,
      groupId: update.groupId!,
      fromRevision: update.fromRevision,
      toRevision: update.toRevision,
      state: update.state,
      canaryInstallId: update.canaryInstallId,
      concurrency: update.concurrency,
      jobId: update.jobId,
      requestedBy: update.requestedBy,
      startedAt: update.startedAt?.toISOString() ?? null,
      finishedAt: update.finishedAt?.toISOString() ?? null,
      error: update.error,
      counts,
      items: items.map(RolloutItemView.of),
    });
  }
}
