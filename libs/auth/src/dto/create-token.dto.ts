import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { ArrayMaxSize, ArrayMinSize, ArrayUnique, IsArray, IsIn, IsISO8601, IsOptional, IsString, Matches, MaxLength } from 'class-validator';
import { TOKEN_SCOPES, type TokenScope } from '@app/catalog';

export class CreateTokenDto {
  @ApiProperty({ example: 'storefront', description: 'Who uses the token (letters, digits, . _ -)' })
  @IsString()
  @MaxLength(64)
  @Matches(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, { message: 'name must be letters, digits, dot, underscore or dash' })
  name: string;

  @ApiProperty({ enum: TOKEN_SCOPES, isArray: true, example: ['orders'] })
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(TOKEN_SCOPES.length)
  @ArrayUnique()
  @IsIn(TOKEN_SCOPES, { each: true, message: `each scope must be one of ${TOKEN_SCOPES.join(', ')}` })
  scopes: TokenScope[];

  @ApiPropertyOptional({ example: '2027-01-31T00:00:00Z', description: 'when the token stops working (ISO 8601, in the future); default: never' })
  @IsOptional()
  @IsISO8601({ strict: true }, { message: 'expiresAt must be an ISO 8601 date and time, like 2027-01-31T00:00:00Z' })
  expiresAt?: string;
}
