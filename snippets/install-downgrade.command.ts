import { Command, CommandRunner, Option } from 'nest-commander';
import { JobsAdminService } from '@app/queue';
import { DowngradeService } from '@app/sites';
import { followOperation, parseId, parseTimeout, request, type FollowOptions } from './site-operation-output.js';
import { cliActor } from './token-create.command.js';

/** The seed's "Downgrade paid to free" (POST /v1/installs/:id/downgrade): queues the saga and follows it; exit 1 when refused or undone. */
@Command({ name: 'install:downgrade', arguments: '<installId>', description: 'downgrade a paid install to free: free group of the same revision, one IP on the master, license, mounts, FTP off, DNS to the master, other copies removed, nginx, probed; undone on failure' })
export class InstallDowngradeCommand extends CommandRunner {
  constructor(
    private readonly downgrades: DowngradeService,
    private readonly jobs: JobsAdminService,
  ) {
    super();
  }

  async run([id]: string[], options: FollowOptions): Promise<void> {
    const installId = parseId(id, 'install');
    const view = await request(() => this.downgrades.downgrade(installId, { dryRun: options.dryRun ?? false }, { actor: cliActor(), via: 'cli' }));
    await followOperation(view, `downgrading install ${installId} to free`, this.jobs, options);
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
