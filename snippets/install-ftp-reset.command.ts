import { Command, CommandRunner, Option } from 'nest-commander';
import { DomainError } from '@app/common';
import { FtpResetPlanner, FtpResetService } from '@app/installs';
import { out, SnippetError } from './cli-output.js';
import { parseInstallId, parseTimeout } from './install-job-follow.js';
import { cliActor } from './token-create.command.js';

/** The seed's "reset_permissions www_bioex1" (POST /v1/installs/:id/ftp/reset): prints each path it changed. */
@Command({ name: 'install:ftp-reset', description: 'owners and modes of an install\'s FTP tree and writable directories back to what its manifest says (--id N); prints path: before -> after; --dry-run changes nothing' })
export class InstallFtpResetCommand extends CommandRunner {
  constructor(
    private readonly resets: FtpResetService,
    private readonly planner: FtpResetPlanner,
  ) {
    super();
  }

  async run(_: string[], options: { id?: number; dryRun?: boolean; timeout?: number }): Promise<void> {
    if (options.id === undefined) throw new SnippetError('--id <install id> is required');
    let view;
    try {
      view = await this.resets.reset(options.id, { dryRun: options.dryRun ?? false, waitMs: (options.timeout ?? 300) * 1000 }, { actor: cliActor(), via: 'cli' }, (id) => this.planner.plan(id));
    } catch (e) {
      if (e instanceof DomainError) throw new SnippetError(`${e.code}: ${e.message}`);
      throw e;
    }
    for (const c of view.changes) out(`${c.path}: ${c.before} -> ${c.after}`);
    if (view.dryRun) {
      out(`dry run: ${view.changes.length} change(s) of ${view.checked} path(s) on ${view.server}; nothing changed`);
      return;
    }
    if (view.state !== 'done') throw new SnippetError(`job ${view.jobId} ${view.state} (is a worker running?)`);
    out(`${view.changes.length} change(s), ${view.checked} path(s) checked on ${view.server} (job ${view.jobId})`);
    out(view.mounts);
  }

  @Option({ flags: '--id <installId>', description: 'the live install' })
  parseId(value: string): number {
    return parseInstallId(value);
  }

  @Option({ flags: '--dry-run', description: 'list what would change; change nothing' })
  parseDryRun(): boolean {
    return true;
  }

  @Option({ flags: '--timeout <seconds>', description: 'how long to wait for the reset job (default 300)' })
  parseTimeout(value: string): number {
    return parseTimeout(value);
  }
}
