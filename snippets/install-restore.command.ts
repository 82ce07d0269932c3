import { Command, CommandRunner, Option } from 'nest-commander';
import { DomainError } from '@app/common';
import { RestoreInstallService } from '@app/installs';
import { JobsAdminService } from '@app/queue';
import { out, SnippetError } from './cli-output.js';
import { followJob, parseInstallId, parseTimeout } from './install-job-follow.js';
import { cliActor } from './token-create.command.js';

/** Brings a removed install back from its kept backup (POST /v1/installs/:id/restore). */
@Command({ name: 'install:restore', description: 'bring a removed install back from its kept backup (--id N): names re-claimed, IPs re-allocated, home, database and certificates restored, built live again' })
export class InstallRestoreCommand extends CommandRunner {
  constructor(
    private readonly restores: RestoreInstallService,
    private readonly jobs: JobsAdminService,
  ) {
    super();
  }

  async run(_: string[], options: { id?: number; dryRun?: boolean; wait?: boolean; timeout?: number }): Promise<void> {
    if (options.id === undefined) throw new SnippetError('--id <install id> is required');
    let view;
    try {
      view = await this.restores.restore(options.id, { dryRun: options.dryRun ?? false }, { actor: cliActor(), via: 'cli' });
    } catch (e) {
      if (e instanceof DomainError) throw new SnippetError(`${e.code}: ${e.message}`);
      throw e;
    }
    if (view.jobId === null) {
      out(`dry run: install ${view.installId} would be restored from backup ${view.backupId} (${view.names.join(', ')}); nothing changed`);
      return;
    }
    out(`restoring install ${view.installId} from backup ${view.backupId}: job ${view.jobId} queued`);
    if (options.wait === false) return;
    await followJob(this.jobs, view.jobId, { timeoutS: options.timeout ?? 900 });
    out(`job ${view.jobId} done: install ${view.installId} is live`);
  }

  @Option({ flags: '--id <installId>', description: 'the removed install' })
  parseId(value: string): number {
    return parseInstallId(value);
  }

  @Option({ flags: '--dry-run', description: 'check names, IPs, group and backup; change nothing' })
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
