import { Command, CommandRunner } from 'nest-commander';
import { ApiTokensService } from '@app/auth';
import { out, SnippetError } from './cli-output.js';
import { cliActor } from './token-create.command.js';

@Command({ name: 'token:revoke', arguments: '<id>', description: 'revoke an API token by id' })
export class TokenRevokeCommand extends CommandRunner {
  constructor(private readonly tokens: ApiTokensService) {
    super();
  }

  async run([idText]: string[]): Promise<void> {
    if (!/^\d{1,9}$/.test(idText ?? '')) throw new SnippetError('the token id is a number (see token:list)');
    const token = await this.tokens.revoke(Number(idText), { actor: cliActor(), via: 'cli' });
    out(`token #${token.id} "${token.name}" revoked at ${token.revokedAt?.toISOString()}`);
  }
}
