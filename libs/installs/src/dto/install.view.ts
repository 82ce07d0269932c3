import { ApiProperty, ApiPropertyOptional, PickType } from '@nestjs/swagger';
import { IsEmail, IsIn, IsInt, IsOptional, Max, Min } from 'class-validator';
import { Type } from 'class-transformer';
import { INSTALL_STATUSES, type InstallStatus } from '@app/catalog';

export class InstallAcceptedView {
  @ApiProperty() installId: number;
  @ApiProperty({ nullable: true, description: 'the build job; null while the install waits for a code group with room' }) jobId: number | null;
  @ApiProperty({ enum: INSTALL_STATUSES }) status: InstallStatus;
  @ApiProperty({ nullable: true }) statusReason: string | null;
  @ApiProperty({ example: '/v1/installs/42' }) statusUrl: string;
}

/** A site's certificate as installed (null fields: none) and its ACME state. */
export class SiteCertificateStateView {
  @ApiPropertyOptional({ type: String, nullable: true, description: "the leaf's end of validity" }) notAfter: string | null;
  @ApiPropertyOptional({ type: String, nullable: true, enum: ['upload', 'acme'] }) source: string | null;
  @ApiPropertyOptional({ type: String, nullable: true, description: "sha256 of the leaf's DER (what the dispatchers serve)" }) sha256: string | null;
  @ApiProperty({ description: 'ACME: whether the certificate is renewed, the next attempt, failures in a row, the last attempt and error' })
  acme: { renew: boolean; nextAttemptAt: string | null; failures: number; lastAttemptAt: string | null; lastError: string | null };
}

export class InstallSiteView {
  @ApiProperty({ description: 'the site id (PUT /v1/installs/:id/sites/:siteId/certificate)' }) id: number;
  @ApiProperty() hostname: string;
  @ApiPropertyOptional({ type: String, nullable: true }) secureHostname: string | null;
  @ApiProperty() relUrl: string;
  @ApiProperty() secureRelUrl: string;
  @ApiProperty({ description: 'IPs serving the site, per server', example: [{ server: 'dispatch1.example.net', ip: '208.43.48.2' }] })
  ips: { server: string; ip: string }[];
  @ApiProperty({ type: SiteCertificateStateView }) certificate: SiteCertificateStateView;
}

export class InstallServerView {
  @ApiProperty() hostname: string;
  @ApiProperty() role: string;
  @ApiProperty() weight: number;
}

export class SagaStepView {
  @ApiProperty() name: string;
  @ApiProperty() state: string;
  @ApiProperty() attempt: number;
  @ApiPropertyOptional({ type: Number, nullable: true }) durationMs: number | null;
  @ApiPropertyOptional({ type: String, nullable: true }) error: string | null;
  @ApiPropertyOptional({ type: String, nullable: true }) startedAt: string | null;
  @ApiPropertyOptional({ type: String, nullable: true }) finishedAt: string | null;
}

export class WebQuarantineView {
  @ApiProperty() server: string;
  @ApiProperty({ description: 'what nginx (or the renderer) refused, naming the install' }) reason: string;
  @ApiProperty() since: string;
}

export class InstallShopView {
  @ApiPropertyOptional({ type: String, nullable: true }) storeName: string | null;
  @ApiPropertyOptional({ type: String, nullable: true }) adminEmail: string | null;
  @ApiPropertyOptional({ type: String, nullable: true }) locale: string | null;
}

export class InstallView {
  @ApiProperty() id: number;
  @ApiProperty() orderRef: string;
  @ApiProperty() customerEmail: string;
  @ApiProperty({ type: InstallShopView, description: "the order's shop values (null: the default)" }) shop: InstallShopView;
  @ApiProperty() license: string;
  @ApiProperty({ enum: INSTALL_STATUSES }) status: InstallStatus;
  @ApiPropertyOptional({ type: String, nullable: true }) statusReason: string | null;
  @ApiProperty() fsName: string;
  @ApiProperty() dbName: string;
  @ApiProperty() dbUser: string;
  @ApiPropertyOptional({ type: String, nullable: true }) dbServer: string | null;
  @ApiPropertyOptional({ type: String, nullable: true }) codeGroup: string | null;
  @ApiPropertyOptional({ type: String, nullable: true }) master: string | null;
  @ApiProperty({ type: [InstallSiteView] }) sites: InstallSiteView[];
  @ApiProperty({ type: [InstallServerView] }) servers: InstallServerView[];
  @ApiPropertyOptional({ type: Number, nullable: true }) jobId: number | null;
  @ApiProperty({ type: [SagaStepView], description: 'the build saga, step by step' }) steps: SagaStepView[];
  @ApiProperty({ type: [WebQuarantineView], description: 'dispatchers whose nginx refused its vhost: its sites there keep their last good vhost, or none' })
  webQuarantines: WebQuarantineView[];
  @ApiProperty() createdAt: string;
}

/** An install in a list: what tells it apart, not its sites, servers and steps. */
export class InstallSummaryView extends PickType(InstallView, ['id', 'orderRef', 'customerEmail', 'license', 'status', 'statusReason', 'fsName', 'createdAt'] as const) {}

export class ListInstallsQuery {
  @ApiPropertyOptional({ enum: INSTALL_STATUSES })
  @IsOptional()
  @IsIn(INSTALL_STATUSES)
  status?: InstallStatus;

  @ApiPropertyOptional()
  @IsOptional()
  @IsEmail()
  email?: string;

  @ApiPropertyOptional({ description: 'installs with a smaller id (paging: the last id of the previous page)' })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  beforeId?: number;

  @ApiPropertyOptional({ default: 50, maximum: 200 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(200)
  limit?: number;
}

export class CredentialView {
  @ApiProperty({ example: 'Admin password' }) label: string;
  @ApiProperty() value: string;
}

export class FtpLoginView {
  @ApiProperty() user: string;
  @ApiProperty({ type: String, nullable: true, description: 'null: the install has no FTP password yet' }) password: string | null;
}

/** What the welcome mail gave the customer: the manifest's credentials and the FTP login. */
export class InstallCredentialsView {
  @ApiProperty({ type: [CredentialView] }) credentials: CredentialView[];
  @ApiProperty({ type: FtpLoginView }) ftp: FtpLoginView;
}
