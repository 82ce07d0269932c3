import { Injectable } from '@nestjs/common';
import { ApiTokenRepository, AuditEventRepository, type ApiToken, type AuditActor, type TokenScope } from '@app/catalog';
import { NotFoundError } from '@app/common';
import { generateToken, hashToken, isWellFormedToken, tokenDisplayPrefix } from './token-codec.js';

export interface IssuedToken {
  /** The token itself: shown once, never stored. */
  token: string;
  record: ApiToken;
}

/** Lets a token's `last_used_at` lag by this much rather than write on every request. */
const LAST_USED_RESOLUTION_MS = 60_000;

@Injectable()
export class ApiTokensService {
  constructor(
    private readonly tokens: ApiTokenRepository,
    private readonly audit: AuditEventRepository,
  ) {}

  async issue(
    name: string,
    scopes: TokenScope[],
    by: AuditActor,
  ): Promise<IssuedToken> {
    const token = generateToken();
    const record = await this.tokens.insert({
      name,
      scopes,
      tokenHash: hashToken(token),
      prefix: tokenDisplayPrefix(token),
    });
    await this.audit.record({
      ...by,
      action: 'token.create',
      targetType: 'api_token',
      targetId: record.id,
      details: { name, scopes },
    });
    return { token, record };
  }

  /** The active token matching this bearer value, or null. */
  async authenticate(token: string, now = new Date()): Promise<ApiToken | null> {
    if (!isWellFormedToken(token)) return null;
    const record = await this.tokens.findActiveByHash(hashToken(token));
    if (!record) return null;
    if (!record.lastUsedAt || now.getTime() - record.lastUsedAt.getTime() > LAST_USED_RESOLUTION_MS) {
      await this.tokens.markUsed(record.id, now);
    }
    return record;
  }

  list(): Promise<ApiToken[]> {
    return this.tokens.list();
  }

  async revoke(id: number, by: AuditActor): Promise<ApiToken> {
    const record = await this.tokens.findById(id);
    if (!record) throw new NotFoundError('API token', id);
    if (await this.tokens.revoke(id, new Date())) {
      await this.audit.record({ ...by, action: 'token.revoke', targetType: 'api_token', targetId: id });
    }
    return (await this.tokens.findById(id)) ?? record;
  }

  /**
   * Replaces the tokens of one name with a fresh one: the embedded default
   * prints a new admin token at every start without piling up old ones.
   */
  async rotate(name: string, scopes: TokenScope[], by: AuditActor): Promise<IssuedToken> {
    await this.tokens.revokeByName(name, new Date());
    return this.issue(name, scopes, by);
  }
}
