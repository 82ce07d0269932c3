import { ApiProperty } from '@nestjs/swagger';
import { TOKEN_SCOPES, type ApiToken, type TokenScope } from '@app/catalog';

/** A token as listed: never its hash. */
export class TokenView {
  @ApiProperty() id: number;
  @ApiProperty() name: string;
  @ApiProperty({ description: 'First characters of the token' }) prefix: string;
  @ApiProperty({ enum: TOKEN_SCOPES, isArray: true }) scopes: TokenScope[];
  @ApiProperty() createdAt: string;
  @ApiProperty({ nullable: true, type: String }) lastUsedAt: string | null;
  @ApiProperty({ nullable: true, type: String }) revokedAt: string | null;
  @ApiProperty({ nullable: true, type: String, description: 'after this the token is refused (401); null: never' }) expiresAt: string | null;

  static of(token: ApiToken): TokenView {
    return {
      id: token.id,
      name: token.name,
      prefix: token.prefix,
      scopes: token.scopes,
      createdAt: token.createdAt.toISOString(),
      lastUsedAt: token.lastUsedAt?.toISOString() ?? null,
      revokedAt: token.revokedAt?.toISOString() ?? null,
      expiresAt: token.expiresAt?.toISOString() ?? null,
    };
  }
}

export class IssuedTokenView extends TokenView {
  @ApiProperty({ description: 'The token itself: shown once, store it now' }) token: string;
}
