import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsBoolean, IsOptional, IsString, MaxLength, MinLength } from 'class-validator';

/** Largest chain accepted (ten certificates with long SAN lists fit). */
export const MAX_CHAIN_CHARS = 65_536;
export const MAX_KEY_CHARS = 16_384;

export class UploadCertificateDto {
  @ApiProperty({ description: 'PEM chain: the leaf first, then each issuer (intermediates); the root may be left out' })
  @IsString()
  @MinLength(1)
  @MaxLength(MAX_CHAIN_CHARS)
  certificate: string;

  @ApiProperty({ description: "PEM private key of the leaf (unencrypted); never logged, stored only on the dispatchers (0600, root's)" })
  @IsString()
  @MinLength(1)
  @MaxLength(MAX_KEY_CHARS)
  key: string;

  @ApiPropertyOptional({ description: 'install a certificate expiring within 7 days anyway' })
  @IsOptional()
  @IsBoolean()
  allowExpiringSoon?: boolean;

  @ApiPropertyOptional({ description: 'check everything and answer the plan (200); nothing is queued' })
  @IsOptional()
  @IsBoolean()
  dryRun?: boolean;
}

export class AcmeRequestDto {
  @ApiPropertyOptional({ description: 'check and answer the plan (200): the pre-flight is not run, nothing is asked of the CA' })
  @IsOptional()
  @IsBoolean()
  dryRun?: boolean;
}

export class CertificateSummaryView {
  @ApiPropertyOptional({ type: String, nullable: true }) sha256: string | null;
  @ApiPropertyOptional({ type: String, nullable: true }) notAfter: string | null;
  @ApiPropertyOptional({ type: String, nullable: true, enum: ['upload', 'acme'] }) source: string | null;
}

export class SiteCertificateView {
  @ApiProperty() installId: number;
  @ApiProperty() siteId: number;
  @ApiProperty() hostname: string;
  @ApiProperty({ type: [String], description: 'the names checked against the SAN (hostname, secure hostname)' }) names: string[];
  @ApiProperty({ enum: ['upload', 'acme'] }) source: string;
  @ApiPropertyOptional({ type: String, nullable: true, description: "the new leaf's sha256 (null for ACME until issued)" }) sha256: string | null;
  @ApiPropertyOptional({ type: String, nullable: true }) notBefore: string | null;
  @ApiPropertyOptional({ type: String, nullable: true }) notAfter: string | null;
  @ApiPropertyOptional({ type: String, nullable: true }) issuer: string | null;
  @ApiPropertyOptional({ type: String, nullable: true }) subjectAltName: string | null;
  @ApiProperty({ type: [String], description: 'the dispatchers the pair is written to and probed on' }) servers: string[];
  @ApiPropertyOptional({ description: 'where the pair is written on each of them', nullable: true }) files: { certificate: string; key: string } | null;
  @ApiProperty({ type: CertificateSummaryView, description: 'the certificate serving now (kept until the new one serves, restored on failure)' }) previous: CertificateSummaryView;
  @ApiPropertyOptional({ type: Number, nullable: true, description: 'the job (GET /v1/jobs/:id); null on a dry run' }) jobId: number | null;
  @ApiProperty() dryRun: boolean;
}
