import { Command, CommandRunner, Option } from 'nest-commander';
import { JobsAdminService } from '@app/queue';
import { SiteRemoveService } from '@app/sites';
import { followOperation, parseId, parseTimeout, request, type FollowOptions } from './site-operation-output.js';
import { cliActor } from './token-create.command.js';

/** Removes a site (DELETE /v1/installs/:id/sites/:siteId; never the last): queues the saga and follows it. */
@Command({ name: 'site:remove', arguments: '<installId> <siteId>', description: 'remove a site of a live install (never its last): vhost, DNS records, IPs, names and certificate files; put back on failure' })
export class SiteRemoveCommand extends CommandRunner {
  constructor(
    private readonly removals: SiteRemoveService,
    private readonly jobs: JobsAdminService,
  ) {
    super();
  }

  async run([id, site]: string[], options: FollowOptions): Promise<void> {
    const installId = parseId(id, 'install');
    const siteId = parseId(site, 'site');
    const view = await request(() => this.removals.remove(installId, siteId, { dryRun: options.dryRun ?? false }, { actor: cliActor(), via: 'cli' }));
    await followOperation(view, `removing site ${siteId} of install ${installId}`, this.jobs, options);
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
