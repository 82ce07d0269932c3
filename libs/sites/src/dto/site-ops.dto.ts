import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { ArrayMaxSize, ArrayMinSize, IsArray, IsBoolean, IsInt, IsOptional, Max, Min } from 'class-validator';
import { HOSTNAME_RULE, IsHostname } from '@app/common';
import { InstallSiteDto } from '@app/installs';
import type { DnsChange } from '@app/dns';

/** POST /v1/installs/:id/sites: the seed's "Adding a new site". */
export class AddSiteDto extends InstallSiteDto {
  @ApiPropertyOptional({ description: 'check everything and answer the plan (200); nothing is reserved or queued' })
  @IsOptional()
  @IsBoolean()
  dryRun?: boolean;
}

/** PATCH /v1/installs/:id/sites/:siteId: the seed's "Change install hostname". */
export class ChangeHostnameDto {
  @ApiPropertyOptional({ example: 'newthing.example.com', description: `${HOSTNAME_RULE}; stored lower-case without a trailing dot` })
  @IsOptional()
  @IsHostname()
  hostname?: string;

  @ApiPropertyOptional({ example: 'secure.newthing.example.com', description: 'the same rule as hostname' })
  @IsOptional()
  @IsHostname()
  secureHostname?: string;

  @ApiPropertyOptional({ type: [Number], example: [12, 31], description: 'explicit server IP ids (server_ips) to serve the site from now on: at least one on every dispatcher of the install, none held by another site' })
  @IsOptional()
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(16)
  @IsInt({ each: true })
  @Min(1, { each: true })
  @Max(2_147_483_647, { each: true })
  ips?: number[];

  @ApiPropertyOptional({ description: 'check everything and answer the plan (200); nothing is reserved or queued' })
  @IsOptional()
  @IsBoolean()
  dryRun?: boolean;
}

/** DELETE /v1/installs/:id/sites/:siteId?dryRun=true, POST /v1/installs/:id/downgrade. */
export class DryRunDto {
  @ApiPropertyOptional({ description: 'check everything and answer the plan (200); nothing is queued' })
  @IsOptional()
  @IsBoolean()
  dryRun?: boolean;
}

export class PlannedIpView {
  @ApiProperty() serverIpId: number;
  @ApiProperty() ip: string;
  @ApiProperty() server: string;
  @ApiProperty({ enum: ['shared', 'dedicated', 'floating'] }) kind: string;
}

export class PlannedVhostView {
  @ApiProperty({ description: 'the dispatcher' }) server: string;
  @ApiProperty({ description: 'what happens to the install\'s vhost there', example: 'server block for shop.example.com on 10.0.0.5 added' }) change: string;
}

export class DnsChangeView {
  @ApiProperty() name: string;
  @ApiPropertyOptional({ type: String, nullable: true }) zone: string | null;
  @ApiProperty({ description: 'false: the company does not manage the zone; the customer must set `after` at their DNS provider' }) managed: boolean;
  @ApiProperty({ type: Object, isArray: true }) before: { type: string; content: string }[];
  @ApiProperty({ type: Object, isArray: true }) after: { type: string; content: string }[];
}

/** What an operation changes (its dry run answers this and queues nothing). */
export class SiteOperationPlanView {
  @ApiProperty({ type: [String], description: 'names claimed for the install' }) reserveNames: string[];
  @ApiProperty({ type: [String], description: 'names given up (once the new ones serve)' }) releaseNames: string[];
  @ApiProperty({ type: [PlannedIpView] }) allocateIps: PlannedIpView[];
  @ApiProperty({ type: [PlannedIpView] }) releaseIps: PlannedIpView[];
  @ApiProperty({ type: [DnsChangeView] }) dns: DnsChange[];
  @ApiProperty({ type: [PlannedVhostView] }) vhosts: PlannedVhostView[];
  @ApiProperty({ type: [String], description: 'the manifest\'s SQL templates run on the tenant database' }) sqlTemplates: string[];
  @ApiProperty({ type: [String], description: 'config files rendered again on every server of the install' }) configFiles: string[];
  @ApiProperty({ type: [String], description: 'anything else: certificates dropped, servers whose copy is removed, license, FTP' }) notes: string[];
}

export class SiteOperationView {
  @ApiProperty() installId: number;
  @ApiPropertyOptional({ type: Number, nullable: true, description: 'the site (null for a downgrade)' }) siteId: number | null;
  @ApiProperty({ example: 'site.add' }) operation: string;
  @ApiProperty({ type: SiteOperationPlanView }) plan: SiteOperationPlanView;
  @ApiPropertyOptional({ type: Number, nullable: true, description: 'the saga job (GET /v1/jobs/:id); null on a dry run' }) jobId: number | null;
  @ApiProperty() dryRun: boolean;
}

/** An empty plan, filled by each operation. */
export function emptyPlan(): SiteOperationPlanView {
  return Object.assign(new SiteOperationPlanView(), { reserveNames: [], releaseNames: [], allocateIps: [], releaseIps: [], dns: [], vhosts: [], sqlTemplates: [], configFiles: [], notes: [] });
}
