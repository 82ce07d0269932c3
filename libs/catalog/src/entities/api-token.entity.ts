import { Column, Entity, Index } from 'typeorm';
import { CatalogEntity, wordList } from './base.entity.js';

export const TOKEN_SCOPES = ['orders', 'support', 'admin'] as const;
export type TokenScope = (typeof TOKEN_SCOPES)[number];

/** An API token; only its SHA-256 is stored, the token itself is shown once. */
@Entity('api_tokens')
export class ApiToken extends CatalogEntity {
  @Column({ type: 'varchar', length: 64 })
  name: string;

  @Index('uq_api_tokens_token_hash', { unique: true })
  @Column({ type: 'varchar', length: 64 })
  tokenHash: string;

  /** First characters of the token, enough for an operator to recognise it. */
  @Column({ type: 'varchar', length: 16 })
  prefix: string;

  @Column({ type: 'varchar', length: 64, transformer: wordList })
  scopes: TokenScope[];

  @Column({ type: 'datetime', nullable: true })
  lastUsedAt: Date | null;

  @Column({ type: 'datetime', nullable: true })
  revokedAt: Date | null;
}
