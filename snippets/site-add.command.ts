import { Command, CommandRunner, Option } from 'nest-commander';
import { JobsAdminService } from '@app/queue';
import { SiteAddService } from '@app/sites';
import { SnippetError } from './cli-output.js';
import { followOperation, parseId, parseTimeout, request, type FollowOptions } from './site-operation-output.js';
import { cliActor } from './token-create.command.js';

interface AddOptions extends FollowOptions {
  hostname?: string;
  secureHostname?: string;
  relUrl?: string;
  secureRelUrl?: string;
}

/** The seed's "Adding a new site" (POST /v1/installs/:id/sites): queues the saga and follows it; exit 1 when refused or undone. */
@Command({ name: 'site:add', arguments: '<installId>', description: 'add a site to a live install (--hostname H): names claimed, IPs allocated, add_site SQL, config, DNS, nginx, probed; undone on failure' })
export class SiteAddCommand extends CommandRunner {
  constructor(
    private readonly adds: SiteAddService,
    private readonly jobs: JobsAdminService,
  ) {
    super();
  }

  async run([id]: string[], options: AddOptions): Promise<void> {
    const installId = parseId(id, 'install');
    if (options.hostname === undefined) throw new SnippetError('--hostname <name> is required');
    const body = { hostname: options.hostname, secureHostname: options.secureHostname, relUrl: options.relUrl, secureRelUrl: options.secureRelUrl, dryRun: options.dryRun ?? false };
    const view = await request(() => this.adds.add(installId, Object.fromEntries(Object.entries(body).filter(([, v]) => v !== undefined)), { actor: cliActor(), via: 'cli' }));
    await followOperation(view, `adding ${options.hostname} to install ${installId}${view.siteId ? ` (site ${view.siteId})` : ''}`, this.jobs, options);
  }

  @Option({ flags: '--hostname <name>', description: 'the new site\'s hostname' })
  parseHostname(value: string): string {
    return value;
  }

  @Option({ flags: '--secure-hostname <name>', description: 'its secure hostname, when it differs' })
  parseSecureHostname(value: string): string {
    return value;
  }

  @Option({ flags: '--rel-url <path>', description: 'its path under the hostname (default /)' })
  parseRelUrl(value: string): string {
    return value;
  }

  @Option({ flags: '--secure-rel-url <path>', description: 'its path under the secure hostname (default: --rel-url)' })
  parseSecureRelUrl(value: string): string {
    return value;
  }

  @Option({ flags: '--dry-run', description: 'print the plan and change nothing' })
  parseDryRun(): boolean {
    return true;
  }

  @Option({ flags: '--no-wait', description: 'queue it and return' })
  parseNoWait(): boolean {
    return false;
  }

  @Option({ flags: '--timeout <seconds>', description: 'how long to follow it (default 600)' })
  parseTimeout(value: string): number {
    return parseTimeout(value);
  }
}
