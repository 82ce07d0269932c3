import { Command, CommandRunner, Option } from 'nest-commander';
import { ApiTokensService, parseScopes } from '@app/auth';
import { TOKEN_SCOPES } from '@app/catalog';
import { out, SnippetError } from './cli-output.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Creates an API token; the token is printed once and only its hash is kept. */
@Command({
  name: 'token:create',
  description: `create an API token, e.g. token:create --scope orders --name storefront (scopes: ${TOKEN_SCOPES.join(', ')})`,
})
export class TokenCreateCommand extends CommandRunner {
  constructor(private readonly tokens: ApiTokensService) {
    super();
  }

  async run(_args: string[], options: { scope?: string[]; name?: string }): Promise<void> {
    const scopes = parseScopes(options.scope ?? []);
    if (!scopes) throw new SnippetError(`give one or more --scope among ${TOKEN_SCOPES.join(', ')}`);
    const name = options.name ?? scopes.join('-');
    if (!NAME.test(name)) throw new SnippetError('--name must be letters, digits, dot, underscore or dash (64 at most)');
    const { token, record } = await this.tokens.issue(name, scopes, { actor: cliActor(), via: 'cli' });
    out(`created token #${record.id} "${record.name}" with scopes ${record.scopes.join(', ')}`);
    out('store it now, it is not shown again:');
    out(token);
  }

  @Option({ flags: '-s, --scope <scope>', description: 'scope to grant (repeatable, or comma-separated)' })
  parseScope(value: string, previous: string[] = []): string[] {
    return previous.concat(value.split(','));
  }

  @Option({ flags: '-n, --name <name>', description: 'who uses the token (default: the scopes)' })
  parseName(value: string): string {
    return value;
  }
}

export function cliActor(): string {
  return `cli:${process.env.SUDO_USER ?? process.env.USER ?? 'unknown'}`;
}
