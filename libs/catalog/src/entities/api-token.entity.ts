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

  /** From then on the token answers 401 like a revoked one; null: it does not expire. */
  @Column({ type: 'datetime', nullable: true })
  expiresAt: Date | null;

  /**
   * Issued by the engine itself (the embedded default's admin token at each
   * start), never through the API or a snippet: the only tokens the engine
   * revokes on its own when it issues their successor.
   */
  @Column({ type: 'boolean', default: false })
  engineIssued: boolean;

  /**
   * The order hook's rate limit, kept here so every API instance on the
   * catalog counts the same orders: the current window (minutes since the
   * epoch) and the orders placed in it.
   */
  @Column({ type: 'int', nullable: true })
  orderWindow: number | null;

  @Column({ type: 'int', default: 0 })
  orderCount: number;
}
