import { ApiProperty } from '@nestjs/swagger';
import { ArrayMaxSize, ArrayMinSize, ArrayUnique, IsArray, IsIn, IsString, Matches, MaxLength } from 'class-validator';
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
}
