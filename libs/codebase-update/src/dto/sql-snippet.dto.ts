import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { ArrayMaxSize, ArrayMinSize, ArrayUnique, IsArray, IsBoolean, IsInt, IsOptional, IsString, Matches, MaxLength, Min, ValidateBy, ValidateIf } from 'class-validator';
import { CODE_UPDATE_ITEM_STATES, CODE_UPDATE_STATES, type CodeUpdate, type CodeUpdateItem } from '@app/catalog';

/** A snippet's name: recorded as `snippet:<name>` in database_updates; a safe identifier. */
export const SNIPPET_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
export const MAX_SNIPPET_NAME = 100;
/** The largest snippet, in bytes (the API's JSON body limit is about this too). */
export const MAX_SNIPPET_BYTES = 256 * 1024;
export const MAX_SNIPPET_INSTALLS = 1000;

/** The field may not be given together with `other` (exactly one of the two). */
function NotWith(other: string) {
  return ValidateBy({
    name: 'notWith',
    validator: {
      validate: (_value, args) => (args?.object as Record<string, unknown>)[other] == null,
      defaultMessage: (args) => `give ${other} or ${args?.property}, not both`,
    },
  });
}

export class ApplySqlSnippetDto {
  @ApiProperty({ description: 'recorded as `snippet:<name>` in each install\'s database_updates: letters, digits, `_`, `.`, `-`', example: '2026-12-fix-prices', maxLength: MAX_SNIPPET_NAME })
  @IsString()
  @MaxLength(MAX_SNIPPET_NAME)
  @Matches(SNIPPET_NAME, { message: 'name must be letters, digits, _ . - (starting with a letter or digit)' })
  name: string;

  @ApiProperty({ description: "the SQL (at most 256 kB), prepared as the group's SQL updates are (comment lines, table prefix)", example: "UPDATE settings SET value = 'x' WHERE name = 'y';" })
  @IsString()
  @MaxLength(MAX_SNIPPET_BYTES)
  sql: string;

  @ApiPropertyOptional({ type: [Number], description: 'the installs (live); or groupId', example: [12, 13] })
  @ValidateIf((o: ApplySqlSnippetDto) => o.installIds != null || o.groupId == null)
  @IsArray({ message: 'give installIds or groupId' })
  @ArrayMinSize(1)
  @ArrayMaxSize(MAX_SNIPPET_INSTALLS)
  @ArrayUnique()
  @IsInt({ each: true })
  @Min(1, { each: true })
  installIds?: number[];

  @ApiPropertyOptional({ description: "every live install of this code group; or installIds" })
  @IsOptional()
  @IsInt()
  @Min(1)
  @NotWith('installIds')
  groupId?: number;

  @ApiPropertyOptional({ description: 'run it again on installs that already have it (their database_updates row is updated)' })
  @IsOptional()
  @IsBoolean()
  force?: boolean;

  @ApiPropertyOptional({ description: 'answer the plan (installs, statements) and change nothing' })
  @IsOptional()
  @IsBoolean()
  dryRun?: boolean;
}

export class SqlSnippetQueuedView {
  @ApiProperty({ description: 'GET /v1/sql-snippets/:updateId' }) updateId: number;
  @ApiProperty({ description: 'the parent job (GET /v1/jobs/:id)' }) jobId: number;
}

export class SqlSnippetPlanInstall {
  @ApiProperty() installId: number;
  @ApiProperty() fsName: string;
  @ApiProperty() groupId: number;
  @ApiProperty({ description: 'the database server' }) dbServer: string;
  @ApiProperty({ description: 'statements it would run (after the group\'s SQL preparation)' }) statements: number;
  @ApiProperty({ description: 'it has the snippet already (run again: force)' }) applied: boolean;
}

export class SqlSnippetPlanView {
  @ApiProperty() dryRun: true;
  @ApiProperty() name: string;
  @ApiProperty({ description: 'SHA-256 of the SQL' }) checksum: string;
  @ApiProperty() force: boolean;
  @ApiProperty({ type: [SqlSnippetPlanInstall] }) installs: SqlSnippetPlanInstall[];
}

export class SqlSnippetItemView {
  @ApiProperty() installId: number;
  @ApiProperty({ enum: CODE_UPDATE_ITEM_STATES }) state: string;
  @ApiProperty({ description: '1 once the snippet ran there' }) sqlApplied: number;
  @ApiPropertyOptional({ type: Number, nullable: true }) sqlMs: number | null;
  @ApiPropertyOptional({ type: String, nullable: true, description: 'why it failed or was skipped (secrets masked)' }) error: string | null;
  @ApiPropertyOptional({ type: String, nullable: true }) errorFile: string | null;
  @ApiPropertyOptional({ type: Number, nullable: true, description: "the failing statement's line in the snippet" }) errorLine: number | null;
  @ApiPropertyOptional({ type: String, nullable: true }) errorStatement: string | null;
  @ApiPropertyOptional({ type: String, nullable: true }) startedAt: string | null;
  @ApiPropertyOptional({ type: String, nullable: true }) finishedAt: string | null;

  static of(item: CodeUpdateItem): SqlSnippetItemView {
    return Object.assign(new SqlSnippetItemView(), {
      installId: item.installId,
      state: item.state,
      sqlApplied: item.sqlApplied,
      sqlMs: item.sqlMs,
      error: item.error,
      errorFile: item.errorFile,
      errorLine: item.errorLine,
      errorStatement: item.errorStatement,
      startedAt: item.startedAt?.toISOString() ?? null,
      finishedAt: item.finishedAt?.toISOString() ?? null,
    });
  }
}

export class SqlSnippetReportView {
  @ApiProperty() id: number;
  @ApiProperty() name: string;
  @ApiProperty({ description: 'SHA-256 of the SQL' }) checksum: string;
  @ApiProperty() force: boolean;
  @ApiProperty({ enum: CODE_UPDATE_STATES, description: 'done: every install ran it (or had it); failed: some install failed' }) state: string;
  @ApiProperty() concurrency: number;
  @ApiPropertyOptional({ type: Number, nullable: true }) jobId: number | null;
  @ApiProperty() requestedBy: string;
  @ApiPropertyOptional({ type: String, nullable: true }) startedAt: string | null;
  @ApiPropertyOptional({ type: String, nullable: true }) finishedAt: string | null;
  @ApiPropertyOptional({ type: String, nullable: true }) error: string | null;
  @ApiProperty({ description: 'items per state', example: { total: 3, pending: 0, running: 0, done: 2, failed: 1, skipped: 0 } }) counts: Record<string, number>;
  @ApiProperty({ type: [SqlSnippetItemView] }) items: SqlSnippetItemView[];

  static of(update: CodeUpdate, items: CodeUpdateItem[]): SqlSnippetReportView {
    const counts: Record<string, number> = { total: items.length, pending: 0, running: 0, done: 0, failed: 0, skipped: 0 };
    for (const item of items) counts[item.state] = (counts[item.state] ?? 0) + 1;
    return Object.assign(new SqlSnippetReportView(), {
      id: update.id,
      name: update.snippetName!,
      checksum: update.snippetChecksum!,
      force: update.force,
      state: update.state,
      concurrency: update.concurrency,
      jobId: update.jobId,
      requestedBy: update.requestedBy,
      startedAt: update.startedAt?.toISOString() ?? null,
      finishedAt: update.finishedAt?.toISOString() ?? null,
      error: update.error,
      counts,
      items: items.map(SqlSnippetItemView.of),
    });
  }
}
