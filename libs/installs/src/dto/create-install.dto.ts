import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Transform, Type } from 'class-transformer';
import { ArrayMaxSize, ArrayMinSize, IsArray, IsEmail, IsFQDN, IsIn, IsInt, IsOptional, Matches, MaxLength, Min, ValidateNested } from 'class-validator';
import { LICENSES, type License } from '@app/catalog';

const lower = ({ value }: { value: unknown }) => (typeof value === 'string' ? value.toLowerCase() : value);
const REL_URL = /^\/([A-Za-z0-9._~-]+\/)*$/;

export class InstallSiteDto {
  @ApiProperty({ example: 'shop.example.com' })
  @Transform(lower)
  @IsFQDN({ require_tld: true, allow_underscores: false }, { message: 'hostname must be a fully qualified hostname' })
  @MaxLength(253)
  hostname: string;

  @ApiPropertyOptional({ example: 'secure.shop.example.com' })
  @IsOptional()
  @Transform(lower)
  @IsFQDN({ require_tld: true, allow_underscores: false }, { message: 'secureHostname must be a fully qualified hostname' })
  @MaxLength(253)
  secureHostname?: string;

  @ApiPropertyOptional({ example: '/', description: 'path of the shop under the hostname; ends with /' })
  @IsOptional()
  @Matches(REL_URL, { message: 'relUrl must be a path that starts and ends with / (letters, digits, . _ ~ -)' })
  @MaxLength(255)
  relUrl?: string;

  @ApiPropertyOptional({ example: '/' })
  @IsOptional()
  @Matches(REL_URL, { message: 'secureRelUrl must be a path that starts and ends with / (letters, digits, . _ ~ -)' })
  @MaxLength(255)
  secureRelUrl?: string;
}

/** The storefront's order: one hosted shop. */
export class CreateInstallDto {
  @ApiProperty({ example: 'order-2026-000123', description: 'the storefront\'s order reference; a repeat returns the same install' })
  @Matches(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, { message: 'orderRef must be letters, digits and . _ : - (up to 128)' })
  orderRef: string;

  @ApiProperty({ example: 'owner@example.com' })
  @IsEmail({}, { message: 'customerEmail must be an email address' })
  @MaxLength(254)
  customerEmail: string;

  @ApiProperty({ enum: LICENSES })
  @IsIn(LICENSES, { message: `license must be one of ${LICENSES.join(', ')}` })
  license: License;

  @ApiProperty({ type: [InstallSiteDto] })
  @IsArray()
  @ArrayMinSize(1, { message: 'sites must name at least one site' })
  @ArrayMaxSize(20)
  @ValidateNested({ each: true })
  @Type(() => InstallSiteDto)
  sites: InstallSiteDto[];

  @ApiPropertyOptional({ description: 'dispatcher to use as the master (default: the one with the fewest installs)' })
  @IsOptional()
  @IsInt()
  @Min(1)
  serverId?: number;
}
