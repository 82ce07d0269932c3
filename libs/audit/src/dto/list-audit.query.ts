import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsInt, IsISO8601, IsOptional, Matches, Max, MaxLength, Min } from 'class-validator';
import { AUDIT_INTERFACES, type AuditInterface } from '@app/catalog';

/** An action, or a prefix of one ending in `*` (`install.*`). */
export const AUDIT_ACTION_FILTER = /^[a-z][a-z0-9._-]{0,63}\*?$/;
/** Token names, operator logins, engine roles: printable, no spaces. */
export const AUDIT_ACTOR_FILTER = /^[A-Za-z0-9._:@+-]{1,128}$/;

/** GET /v1/audit: every filter optional, combined with AND. */
export class ListAuditQuery {
  @ApiPropertyOptional({ description: 'events whose target is this install (targetType install)', example: 42 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(2_147_483_647)
  installId?: number;

  @ApiPropertyOptional({ description: 'exactly this actor (token:<name>, cli:<login>, worker...)', example: 'token:support-desk' })
  @IsOptional()
  @Matches(AUDIT_ACTOR_FILTER, { message: 'actor must be 1-128 letters, digits and ._:@+-' })
  actor?: string;

  @ApiPropertyOptional({ description: 'this action, or actions starting with a prefix ending in * (install.*)', example: 'install.rewrites' })
  @IsOptional()
  @Matches(AUDIT_ACTION_FILTER, { message: 'action must be an action like install.rewrites, or a prefix ending in * like install.*' })
  action?: string;

  @ApiPropertyOptional({ description: 'events at or after this time (ISO 8601)', example: '2026-12-01T00:00:00Z' })
  @IsOptional()
  @MaxLength(40)
  @IsISO8601({ strict: true }, { message: 'since must be an ISO 8601 date or time, like 2026-12-01T00:00:00Z' })
  since?: string;

  @ApiPropertyOptional({ description: 'events before this time (ISO 8601)', example: '2026-12-02T00:00:00Z' })
  @IsOptional()
  @MaxLength(40)
  @IsISO8601({ strict: true }, { message: 'until must be an ISO 8601 date or time, like 2026-12-02T00:00:00Z' })
  until?: string;

  @ApiPropertyOptional({ default: 100, minimum: 1, maximum: 1000 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(1000)
  limit?: number;

  @ApiPropertyOptional({ description: 'events with a smaller id: the nextBeforeId of the previous page' })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(2_147_483_647)
  beforeId?: number;
}

export class AuditEventView {
  @ApiProperty() id: number;
  @ApiProperty({ description: 'when (ISO 8601, UTC)' }) at: string;
  @ApiProperty({ example: 'token:support-desk' }) actor: string;
  @ApiProperty({ enum: AUDIT_INTERFACES }) via: AuditInterface;
  @ApiProperty({ example: 'install.rewrites' }) action: string;
  @ApiPropertyOptional({ type: String, nullable: true, example: 'install' }) targetType: string | null;
  @ApiPropertyOptional({ type: String, nullable: true, example: '42' }) targetId: string | null;
  @ApiPropertyOptional({ type: Object, nullable: true, description: 'what the event recorded (before/after of a change); never a secret' }) details: Record<string, unknown> | null;
}

export class AuditPageView {
  @ApiProperty({ type: AuditEventView, isArray: true, description: 'newest first' }) events: AuditEventView[];
  @ApiPropertyOptional({ type: Number, nullable: true, description: 'pass as beforeId for the next page; null when this page is the last' }) nextBeforeId: number | null;
}
