import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';

/** What a removal does (its dry run answers it; the queued one does it). */
export class RemovalPlanView {
  @ApiProperty() installId: number;
  @ApiProperty({ description: 'live or failed' }) status: string;
  @ApiProperty({ type: [String], description: 'the servers it is removed from (master first)' }) servers: string[];
  @ApiProperty({ description: 'where the backup goes: server and a directory made for it alone' }) backup: { server: string; directory: string; graceDays: number };
  @ApiProperty({ type: [String], description: 'what is deleted, in order (only what this install made)' }) steps: string[];
  @ApiProperty({ type: [String], description: 'the names whose DNS records are removed (managed zones only)' }) names: string[];
  @ApiPropertyOptional({ description: 'DNS records as they are and would be (managed zones), when a DNS adapter is configured' }) dns?: unknown;
  @ApiPropertyOptional({ type: Number, nullable: true, description: 'the saga job (GET /v1/jobs/:id); null on a dry run' }) jobId: number | null;
  @ApiProperty() dryRun: boolean;
}

/** An install's removals and backups: each backup's state and the last removal's verification sweep. */
export class RemovalView {
  @ApiProperty() installId: number;
  @ApiProperty() status: string;
  @ApiPropertyOptional({ type: String, nullable: true }) removedAt: string | null;
  @ApiProperty({ description: 'newest first: id, state (taking|kept|restored|purged|failed), server, path, expiresAt, sizeBytes, files' }) backups: unknown[];
  @ApiPropertyOptional({ description: 'the last removal\'s verification sweep: items checked, leftovers' }) sweep: unknown;
}

/** A restore queued (or its dry run). */
export class RestoreView {
  @ApiProperty() installId: number;
  @ApiProperty() backupId: number;
  @ApiProperty({ type: [String] }) names: string[];
  @ApiPropertyOptional({ type: Number, nullable: true }) jobId: number | null;
  @ApiProperty() dryRun: boolean;
}

/** One owner or mode the FTP reset changed (or would). */
export class FtpChangeView {
  @ApiProperty() path: string;
  @ApiProperty({ example: 'root:root 0755' }) before: string;
  @ApiProperty({ example: 'shop42:shop42 2770' }) after: string;
}

export class FtpResetView {
  @ApiProperty() installId: number;
  @ApiProperty() server: string;
  @ApiProperty({ type: [FtpChangeView] }) changes: FtpChangeView[];
  @ApiProperty({ description: 'paths checked' }) checked: number;
  @ApiProperty({ description: 'about bind mounts' }) mounts: string;
  @ApiPropertyOptional({ type: Number, nullable: true }) jobId: number | null;
  @ApiProperty() dryRun: boolean;
  @ApiProperty({ description: 'done, or queued (the job is still running: GET /v1/jobs/:id)' }) state: string;
}
