import { Command, CommandRunner, Option } from 'nest-commander';
import { ChangeCodebaseService } from '@app/codebase-update';
import { DomainError } from '@app/common';
import { JobsAdminService } from '@app/queue';
import { out, SnippetError } from './cli-output.js';
import { followJob } from './follow-job.js';
import { cliActor } from './token-create.command.js';

interface CodebaseOptions {
  group?: number;
  dryRun?: boolean;
  wait?: boolean;
  timeout?: number;
}


/**
 * The seed's "Change codebase" (POST /v1/installs/:id/codebase): moves a
 * live install to another code group of the same revision. Queues the saga
 * and follows its output; exit 1 when refused or when the change failed
 * (and was undone).
 */
@Command({
  name: 'install:codebase',
  arguments: '<installId>',
  description: 'move a live install to another code group of the same revision (--group G): its .code link re-pointed on every server, slot moved, pools and nginx rebuilt, probed; undone on failure',
})
export class InstallCodebaseCommand extends CommandRunner {
  constructor(
    private readonly changes: ChangeCodebaseService,
    private readonly jobs: JobsAdminService,
  ) {
    super();
  }

  async run([id]: string[], options: CodebaseOptions): Promise<void> {
    if (!/^\d{1,9}$/.test(id ?? '') || Number(id) < 1) throw new SnippetError('the install id is a number');
    if (options.group === undefined) throw new SnippetError('--group <id> is required (the code group to move to)');
    let result;
    try {
      result = await this.changes.change(Number(id), { groupId: options.group, dryRun: options.dryRun ?? false }, { actor: cliActor(), via: 'cli' });
    } catch (e) {
      if (e instanceof DomainError) throw new SnippetError(`${e.code}: ${e.message}`);
      throw e;
    }
    const what = `install ${result.installId} from group ${result.fromGroupId} to group ${result.toGroupId} (revision ${result.revision.slice(0, 12)}, on ${result.servers.join(', ')})`;
    if (result.jobId === null) {
      out(`dry run: ${what} would be moved; nothing changed`);
      return;
    }
    out(`moving ${what}: job ${result.jobId} queued`);
    if (options.wait === false) return;
    await followJob(this.jobs, result.jobId, { timeoutS: options.timeout ?? 600 });
    out(`the install is on group ${result.toGroupId}`);
  }

  @Option({ flags: '--group <id>', description: 'the code group to move to (ready, unlocked, not full, same tier and revision)' })
  parseGroup(value: string): number {
    if (!/^\d{1,9}$/.test(value) || Number(value) < 1) throw new SnippetError('--group is a code group id');
    return Number(value);
  }

  @Option({ flags: '--dry-run', description: 'check everything (the release on every server too) and change nothing' })
  parseDryRun(): boolean {
    return true;
  }

  @Option({ flags: '--no-wait', description: 'queue it and return' })
  parseNoWait(): boolean {
    return false;
  }

  @Option({ flags: '--timeout <seconds>', description: 'how long to follow it (default 600)' })
  parseTimeout(value: string): number {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > 86_400) throw new SnippetError('--timeout must be a number of seconds');
    return n;
  }
}
