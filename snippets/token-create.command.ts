import { Command, CommandRunner, Option } from 'nest-commander';
import { ApiTokensService, parseScopes } from '@app/auth';
import { TOKEN_SCOPES } from '@app/catalog';
import { out, SnippetError } from './cli-output.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const UNIT_MS: Record<string, number> = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
/** Ten years: a longer life is "never", which is the default. */
const LONGEST_MS = 3650 * UNIT_MS.d!;

/** `30d`, `12h`, `90m`, `2w` as milliseconds; null for anything else. */
export function parseDuration(text: string): number | null {
  const match = /^([1-9][0-9]{0,6})([mhdw])$/.exec(text.trim());
  if (!match) return null;
  const ms = Number(match[1]) * UNIT_MS[match[2]!]!;
  return ms <= LONGEST_MS ? ms : null;
}

/** Creates an API token; the token is printed once and only its hash is kept. */
@Command({
  name: 'token:create',
  description: `create an API token, e.g. token:create --scope orders --name storefront --expires-in 90d (scopes: ${TOKEN_SCOPES.join(', ')})`,
})
export class TokenCreateCommand extends CommandRunner {
  constructor(private readonly tokens: ApiTokensService) {
    super();
  }

  async run(_args: string[], options: { scope?: string[]; name?: string; expiresIn?: string }): Promise<void> {
    const scopes = parseScopes(options.scope ?? []);
    if (!scopes) throw new SnippetError(`give one or more --scope among ${TOKEN_SCOPES.join(', ')}`);
    const name = options.name ?? scopes.join('-');
    if (!NAME.test(name)) throw new SnippetError('--name must be letters, digits, dot, underscore or dash (64 at most)');
    let expiresAt: Date | null = null;
    if (options.expiresIn !== undefined) {
      const ms = parseDuration(options.expiresIn);
      if (ms === null) throw new SnippetError('--expires-in must be a number and a unit m, h, d or w (like 30d), ten years at most');
      expiresAt = new Date(Date.now() + ms);
    }
    const { token, record } = await this.tokens.issue(name, scopes, { actor: cliActor(), via: 'cli' }, { expiresAt });
    out(`created token #${record.id} "${record.name}" with scopes ${record.scopes.join(', ')}${expiresAt ? `, expiring ${expiresAt.toISOString()}` : ''}`);
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

  @Option({ flags: '--expires-in <duration>', description: 'lifetime like 30d, 12h, 90m or 2w (default: never expires)' })
  parseExpiresIn(value: string): string {
    return value;
  }
}

export function cliActor(): string {
  return `cli:${process.env.SUDO_USER ?? process.env.USER ?? 'unknown'}`;
}
