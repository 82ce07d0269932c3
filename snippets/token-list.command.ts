import { Command, CommandRunner } from 'nest-commander';
import { ApiTokensService } from '@app/auth';
import { out, table } from './cli-output.js';

@Command({ name: 'token:list', description: 'list API tokens (never the tokens themselves)' })
export class TokenListCommand extends CommandRunner {
  constructor(private readonly tokens: ApiTokensService) {
    super();
  }

  async run(): Promise<void> {
    const tokens = await this.tokens.list();
    out(
      table(
        ['id', 'name', 'prefix', 'scopes', 'created', 'last used', 'expires', 'revoked'],
        tokens.map((t) => [
          t.id,
          t.name,
          t.prefix,
          t.scopes.join(','),
          t.createdAt.toISOString(),
          t.lastUsedAt?.toISOString() ?? null,
          t.expiresAt?.toISOString() ?? null,
          t.revokedAt?.toISOString() ?? null,
        ]),
      ),
    );
  }
}
