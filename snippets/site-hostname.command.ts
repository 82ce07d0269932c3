import { Command, CommandRunner, Option } from 'nest-commander';
import { JobsAdminService } from '@app/queue';
import { HostnameChangeService } from '@app/sites';
import { SnippetError } from './cli-output.js';
import { followOperation, parseId, parseTimeout, request, type FollowOptions } from './site-operation-output.js';
import { cliActor } from './token-create.command.js';

interface HostnameOptions extends FollowOptions {
  hostname?: string;
  secureHostname?: string;
  ips?: number[];
}

/** The seed's "Change install hostname" (PATCH /v1/installs/:id/sites/:siteId): queues the saga and follows it. */
@Command({ name: 'site:hostname', arguments: '<installId> <siteId>', description: 'change a site\'s hostname (--hostname), secure hostname (--secure-hostname) or IPs (--ips 12,31): the old names released once the new ones serve; back to the old name on failure' })
export class SiteHostnameCommand extends CommandRunner {
  constructor(
    private readonly hostnames: HostnameChangeService,
    private readonly jobs: JobsAdminService,
  ) {
    super();
  }

  async run([id, site]: string[], options: HostnameOptions): Promise<void> {
    const installId = parseId(id, 'install');
    const siteId = parseId(site, 'site');
    if (options.hostname === undefined && options.secureHostname === undefined && options.ips === undefined) throw new SnippetError('give --hostname, --secure-hostname or --ips');
    const body = Object.fromEntries(Object.entries({ hostname: options.hostname, secureHostname: options.secureHostname, ips: options.ips, dryRun: options.dryRun ?? false }).filter(([, v]) => v !== undefined));
    const view = await request(() => this.hostnames.change(installId, siteId, body, { actor: cliActor(), via: 'cli' }));
    await followOperation(view, `changing site ${siteId} of install ${installId}${options.hostname ? ` to ${options.hostname}` : ''}`, this.jobs, options);
  }

  @Option({ flags: '--hostname <name>', description: 'the new hostname' })
  parseHostname(value: string): string {
    return value;
  }

  @Option({ flags: '--secure-hostname <name>', description: 'the new secure hostname' })
  parseSecureHostname(value: string): string {
    return value;
  }

  @Option({ flags: '--ips <ids>', description: 'server IP ids (comma-separated) to serve the site from: one at least on every dispatcher of the install' })
  parseIps(value: string): number[] {
    if (!/^\d{1,9}(,\d{1,9})*$/.test(value)) throw new SnippetError('--ips is a comma-separated list of server IP ids');
    return value.split(',').map(Number);
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
