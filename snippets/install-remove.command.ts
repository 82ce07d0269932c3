import { Command, CommandRunner, Option } from 'nest-commander';
import { DomainError } from '@app/common';
import { RemoveInstallService } from '@app/installs';
import { JobsAdminService } from '@app/queue';
import { out, SnippetError } from './cli-output.js';
import { followJob, parseInstallId, parseTimeout } from './install-job-follow.js';
import { cliActor } from './token-create.command.js';

interface RemoveOptions {
  id?: number;
  dryRun?: boolean;
  wait?: boolean;
  timeout?: number;
}

/**
 * Removes an install (DELETE /v1/installs/:id): backup first, then every
 * trace of it on every server, then a verification sweep, printed at the
 * end. Exit 1 when refused, or when the removal did not end done.
 */
@Command({ name: 'install:remove', description: 'remove a live or failed install (--id N): backup kept BACKUP_GRACE_DAYS, everything it made deleted, a verification sweep over every server; --dry-run shows the plan' })
export class InstallRemoveCommand extends CommandRunner {
  constructor(
    private readonly removals: RemoveInstallService,
    private readonly jobs: JobsAdminService,
  ) {
    super();
  }

  async run(_: string[], options: RemoveOptions): Promise<void> {
    if (options.id === undefined) throw new SnippetError('--id <install id> is required');
    let plan;
    try {
      plan = await this.removals.remove(options.id, { dryRun: options.dryRun ?? false }, { actor: cliActor(), via: 'cli' });
    } catch (e) {
      if (e instanceof DomainError) throw new SnippetError(`${e.code}: ${e.message}`);
      throw e;
    }
    out(`install ${plan.installId} (${plan.status}) on ${plan.servers.join(', ')}; backup to ${plan.backup.server}:${plan.backup.directory} kept ${plan.backup.graceDays} days`);
    if (plan.jobId === null) {
      for (const step of plan.steps) out(`  ${step}`);
      out(`  names: ${plan.names.join(', ') || 'none'}`);
      out('dry run: nothing changed');
      return;
    }
    out(`removing: job ${plan.jobId} queued`);
    if (options.wait === false) return;
    await followJob(this.jobs, plan.jobId, { timeoutS: options.timeout ?? 900 });
    const view = await this.removals.view(plan.installId);
    const sweep = view.sweep as { checked: number; leftovers: unknown[] } | null;
    out(`job ${plan.jobId} done: install ${plan.installId} is ${view.status}; sweep: ${sweep?.checked ?? 0} item(s) checked, ${sweep?.leftovers.length ?? '?'} left`);
  }

  @Option({ flags: '--id <installId>', description: 'the install to remove' })
  parseId(value: string): number {
    return parseInstallId(value);
  }

  @Option({ flags: '--dry-run', description: 'show the plan; change nothing' })
  parseDryRun(): boolean {
    return true;
  }

  @Option({ flags: '--no-wait', description: 'queue it and return' })
  parseNoWait(): boolean {
    return false;
  }

  @Option({ flags: '--timeout <seconds>', description: 'how long to follow it (default 900)' })
  parseTimeout(value: string): number {
    return parseTimeout(value);
  }
}
