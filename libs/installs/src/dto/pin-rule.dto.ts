import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { IsEmail, IsInt, IsOptional, Matches, Max, MaxLength, Min, ValidateIf } from 'class-validator';
import { PIN_ATTRIBUTE_NAME, PIN_ATTRIBUTE_VALUE, type PinRule } from '@app/catalog';

export const ATTRIBUTE_NAME = PIN_ATTRIBUTE_NAME;

export class CreatePinRuleDto {
  @ApiPropertyOptional({ example: 'bigcustomer@example.com', description: 'orders from this customer (give this, or an attribute and value)' })
  @ValidateIf((o: CreatePinRuleDto) => o.matchAttribute === undefined || o.matchEmail !== undefined)
  @Transform(({ value }) => (typeof value === 'string' ? value.toLowerCase() : value))
  @IsEmail({}, { message: 'matchEmail must be an email address (or give matchAttribute and matchValue)' })
  @MaxLength(254)
  matchEmail?: string;

  @ApiPropertyOptional({ example: 'reseller', description: 'an order attribute name' })
  @ValidateIf((o: CreatePinRuleDto) => o.matchEmail === undefined || o.matchAttribute !== undefined)
  @Matches(ATTRIBUTE_NAME, { message: 'matchAttribute must be lower-case letters, digits and _ (or give matchEmail)' })
  matchAttribute?: string;

  @ApiPropertyOptional({ example: 'acme' })
  @ValidateIf((o: CreatePinRuleDto) => o.matchAttribute !== undefined)
  @Matches(PIN_ATTRIBUTE_VALUE, { message: 'matchValue must be 1-128 printable characters' })
  matchValue?: string;

  @ApiPropertyOptional({ description: 'code group the matching orders use (it may be a pinned group)' })
  @IsOptional()
  @IsInt()
  @Min(1)
  codeGroupId?: number;

  @ApiPropertyOptional({ description: 'dispatcher the matching orders use as master' })
  @IsOptional()
  @IsInt()
  @Min(1)
  serverId?: number;

  @ApiPropertyOptional({ default: 100, description: 'the lowest matching priority wins' })
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(1_000_000)
  priority?: number;

  @ApiPropertyOptional({ example: 'their own codebase since 2019' })
  @IsOptional()
  @Matches(/^[^\x00-\x1f]{0,255}$/, { message: 'note must be one line of up to 255 characters' })
  note?: string;
}

export class PinRuleView {
  @ApiProperty() id: number;
  @ApiPropertyOptional({ type: String, nullable: true }) matchEmail: string | null;
  @ApiPropertyOptional({ type: String, nullable: true }) matchAttribute: string | null;
  @ApiPropertyOptional({ type: String, nullable: true }) matchValue: string | null;
  @ApiPropertyOptional({ type: Number, nullable: true }) codeGroupId: number | null;
  @ApiPropertyOptional({ type: Number, nullable: true }) serverId: number | null;
  @ApiProperty() priority: number;
  @ApiPropertyOptional({ type: String, nullable: true }) note: string | null;

  static of(r: PinRule): PinRuleView {
    const { id, matchEmail, matchAttribute, matchValue, codeGroupId, serverId, priority, note } = r;
    return { id, matchEmail, matchAttribute, matchValue, codeGroupId, serverId, priority, note };
  }
}
