import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  ArrayMaxSize,
  ArrayMinSize,
  IsArray,
  IsEmail,
  IsIn,
  IsInt,
  IsObject,
  IsOptional,
  IsString,
  Matches,
  MaxLength,
  Min,
  Validate,
  ValidateNested,
  ValidatorConstraint,
  type ValidatorConstraintInterface,
} from 'class-validator';
import { LICENSES, type License } from '@app/catalog';
import { DomainError, HOSTNAME_RULE, IsHostname } from '@app/common';

/** At most 20 attributes, names like identifiers, values printable and short. */
@ValidatorConstraint({ name: 'orderAttributes' })
class OrderAttributes implements ValidatorConstraintInterface {
  validate(value: unknown): boolean {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
    const entries = Object.entries(value);
    return entries.length <= 20 && entries.every(([k, v]) => /^[a-z][a-z0-9_]{0,31}$/.test(k) && typeof v === 'string' && /^[\x20-\x7e]{1,128}$/.test(v));
  }

  defaultMessage(): string {
    return 'attributes must map up to 20 names (lower-case letters, digits, _) to strings of 1-128 printable characters';
  }
}

const REL_URL = /^\/([A-Za-z0-9._~-]+\/)*$/;

export class InstallSiteDto {
  @ApiProperty({ example: 'shop.example.com', description: `${HOSTNAME_RULE}; stored lower-case without a trailing dot` })
  @IsHostname()
  hostname: string;

  @ApiPropertyOptional({ example: 'secure.shop.example.com', description: 'the same rule as hostname' })
  @IsOptional()
  @IsHostname()
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

/** The shop's own values, as the customer gave them at checkout: templates and SQL templates see them, escaped for their language. */
export class OrderShopDto {
  @ApiPropertyOptional({ example: "Bob's Bikes", description: 'the store name (1-128 characters, no control characters); default: the first hostname' })
  @IsOptional()
  @IsString()
  @Matches(/^[^\p{Cc}\p{Cf}\p{Zl}\p{Zp}]{1,128}$/u, { message: 'shop.storeName must be 1-128 characters without control characters' })
  @Matches(/^\S(.*\S)?$/su, { message: 'shop.storeName must not start or end with a blank' })
  storeName?: string;

  @ApiPropertyOptional({ example: 'admin@example.com', description: 'the shop administrator\'s email; default: customerEmail' })
  @IsOptional()
  @IsEmail({}, { message: 'shop.adminEmail must be an email address' })
  @MaxLength(254)
  adminEmail?: string;

  @ApiPropertyOptional({ example: 'de_DE', description: 'language and optional region: en, de_DE, pt-BR; default: en' })
  @IsOptional()
  @Matches(/^[a-z]{2,3}([_-][A-Za-z]{2,4})?$/, { message: 'shop.locale must be a language code with an optional region (en, de_DE, pt-BR)' })
  locale?: string;
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

  @ApiPropertyOptional({ example: { reseller: 'acme' }, description: 'order attributes pin rules may match (names: lower-case letters, digits, _; values: up to 128 printable characters)' })
  @IsOptional()
  @IsObject()
  @Validate(OrderAttributes)
  attributes?: Record<string, string>;

  @ApiPropertyOptional({ type: OrderShopDto })
  @IsOptional()
  @IsObject({ message: 'shop must be an object' })
  @ValidateNested()
  @Type(() => OrderShopDto)
  shop?: OrderShopDto;

  @ApiPropertyOptional({ description: 'dispatcher to use as the master (default: a pin rule, else the one with the fewest installs)' })
  @IsOptional()
  @IsInt()
  @Min(1)
  serverId?: number;
}

/**
 * The license's bound on an order's sites (MAX_SITES_FREE, MAX_SITES_PAID),
 * checked before anything is recorded.
 */
export function checkSitesAllowed(order: Pick<CreateInstallDto, 'license' | 'sites'>, maxSites: Record<License, number>): void {
  const max = maxSites[order.license];
  if (order.sites.length > max) {
    throw new DomainError(
      'TOO_MANY_SITES',
      `A ${order.license} order may name at most ${max} site(s); this one names ${order.sites.length}. Nothing was created.`,
      400,
      { license: order.license, maxSites: max, sites: order.sites.length },
    );
  }
}
