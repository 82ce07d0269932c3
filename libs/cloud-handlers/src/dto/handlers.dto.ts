import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsBoolean, IsDateString, IsInt, IsOptional, Max, Min, ValidateIf } from 'class-validator';
import { INSTALL_SERVER_ROLES, INSTALL_SERVER_STATES, SERVER_STATES } from '@app/catalog';
import type { CloudServerState } from '../cloud-servers.service.js';
import type { HandlerRow } from '../install-handlers.service.js';

/** The highest weight an operator gives a handler (nginx takes up to 1000; a share in percent reads best). */
export const MAX_WEIGHT = 100;

export class AddHandlerDto {
  @ApiProperty({ description: 'the server (role cloud or handler, active, with a private IP)', example: 7 })
  @IsInt()
  @Min(1)
  serverId: number;

  @ApiPropertyOptional({ description: `its upstream weight, 0-${MAX_WEIGHT} (default 1; 0: out of rotation)`, example: 2 })
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(MAX_WEIGHT)
  weight?: number;
}

export class SetWeightDto {
  @ApiProperty({ description: `0-${MAX_WEIGHT}; 0 on the master or a replica makes it a backup (clouds only), on a cloud takes it out of rotation` })
  @IsInt()
  @Min(0)
  @Max(MAX_WEIGHT)
  weight: number;
}

export class CloudsOnlyDto {
  @ApiProperty({ description: "true: all PHP traffic to the install's clouds, its master and replica as nginx backups; false: back in rotation" })
  @IsBoolean()
  enabled: boolean;
}

export class SetLeaseDto {
  @ApiProperty({ type: String, nullable: true, description: 'when the lease ends (ISO 8601 with a zone); null: no lease', example: '2030-01-31T18:00:00Z' })
  @ValidateIf((_, v) => v !== null)
  @IsDateString({ strict: true, strictSeparator: true })
  leaseExpiresAt: string | null;
}

export class HandlerView {
  @ApiProperty() serverId: number;
  @ApiProperty() hostname: string;
  @ApiProperty({ enum: INSTALL_SERVER_ROLES }) role: string;
  @ApiProperty({ enum: INSTALL_SERVER_STATES, description: 'adding: a pool, no traffic yet; active: serving; removing: out of every upstream, going' }) state: string;
  @ApiProperty() weight: number;
  @ApiPropertyOptional({ type: Number, nullable: true, description: "the pool's TCP port on the handler's private IP (null: unix socket or unmanaged PHP)" }) poolPort: number | null;
  @ApiProperty({ enum: SERVER_STATES }) serverState: string;

  static of(row: HandlerRow): HandlerView {
    return Object.assign(new HandlerView(), row);
  }
}

export class HandlerJobView {
  @ApiProperty({ description: 'the job doing it (GET /v1/jobs/:id)' }) jobId: number;
  @ApiPropertyOptional({ type: HandlerView }) handler?: HandlerView;
}

export class CloudServerHandlerView {
  @ApiProperty() installId: number;
  @ApiProperty({ enum: INSTALL_SERVER_STATES }) state: string;
  @ApiProperty() weight: number;
  @ApiPropertyOptional({ type: Number, nullable: true }) poolPort: number | null;
}

export class CloudServerView {
  @ApiProperty() id: number;
  @ApiProperty() hostname: string;
  @ApiPropertyOptional({ type: String, nullable: true }) privateIp: string | null;
  @ApiProperty({ enum: SERVER_STATES }) state: string;
  @ApiPropertyOptional({ type: String, nullable: true, description: 'when the lease ends (drained then)' }) leaseExpiresAt: string | null;
  @ApiPropertyOptional({ type: String, nullable: true, description: 'when operations were reminded of this expiry' }) leaseRemindedAt: string | null;
  @ApiProperty({ type: CloudServerHandlerView, isArray: true }) handlers: CloudServerHandlerView[];

  static of({ server, handlers }: CloudServerState): CloudServerView {
    return Object.assign(new CloudServerView(), {
      id: server.id,
      hostname: server.hostname,
      privateIp: server.privateIp,
      state: server.state,
      leaseExpiresAt: server.leaseExpiresAt?.toISOString() ?? null,
      leaseRemindedAt: server.leaseRemindedAt?.toISOString() ?? null,
      handlers,
    });
  }
}

export class CloudServerJobView {
  @ApiProperty() jobId: number;
  @ApiPropertyOptional({ type: Number, isArray: true, description: 'the remove-handler jobs, one per install' }) handlerJobs?: number[];
}
