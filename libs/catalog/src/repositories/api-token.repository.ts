import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { IsNull, Repository } from 'typeorm';
import { ApiToken, type TokenScope } from '../entities/index.js';

export interface NewApiToken {
  name: string;
  tokenHash: string;
  prefix: string;
  scopes: TokenScope[];
  /** When it stops working; null or absent: never. */
  expiresAt?: Date | null;
  /** Made by the engine itself (the embedded default's admin token), not through the API or a snippet. */
  engineIssued?: boolean;
}

@Injectable()
export class ApiTokenRepository {
  constructor(@InjectRepository(ApiToken) private readonly tokens: Repository<ApiToken>) {}

  insert(token: NewApiToken): Promise<ApiToken> {
    return this.tokens.save(this.tokens.create({ ...token, lastUsedAt: null, revokedAt: null }));
  }

  findActiveByHash(tokenHash: string): Promise<ApiToken | null> {
    return this.tokens.findOne({ where: { tokenHash, revokedAt: IsNull() } });
  }

  findById(id: number): Promise<ApiToken | null> {
    return this.tokens.findOne({ where: { id } });
  }

  list(): Promise<ApiToken[]> {
    return this.tokens.find({ order: { id: 'ASC' } });
  }

  async markUsed(id: number, at: Date): Promise<void> {
    await this.tokens.update({ id }, { lastUsedAt: at });
  }

  /** Revokes every active token with this name; returns how many. */
  async revokeByName(name: string, at: Date): Promise<number> {
    const result = await this.tokens.update({ name, revokedAt: IsNull() }, { revokedAt: at });
    return result.affected ?? 0;
  }

  async revoke(id: number, at: Date): Promise<boolean> {
    const result = await this.tokens.update({ id, revokedAt: IsNull() }, { revokedAt: at });
    return (result.affected ?? 0) > 0;
  }
}
