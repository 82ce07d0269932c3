import { ModuleRef } from '@nestjs/core';
import { Command, CommandRunner, Option } from 'nest-commander';
import { CodeGroupsService, CodeGroupView } from '@app/codebases';
import { JobsAdminService } from '@app/queue';
import { out, SnippetError } from './cli-output.js';
import { cliActor } from './token-create.command.js';

const FINISHED = ['done', 'dead', 'cancelled'];

/**
 * Removes a failed or unused code group (DELETE /v1/code-groups/:id): its
 * checkout on its master and on every server it was synced to, then the
 * group, whose name is free again. A worker runs the removal; this follows it.
 */
@Command({
  name: 'codegroup:remove',
  arguments: '<id>',
  description: 'remove a failed or unused code group and its checkouts (refused while installs or pin rules use it); exit 1 if refused or failed',
})
export class CodeGroupRemoveCommand extends CommandRunner {
  private service?: CodeGroupsService;

  constructor(
    private readonly moduleRef: ModuleRef,
    private readonly jobs: JobsAdminService,
  ) {
    super();
  }

  /** The CLI's module does not import CodebasesModule: its service is built here from the global catalog and queue providers. */
  private async groups(): Promise<CodeGroupsService> {
    this.service ??= await this.moduleRef.create(CodeGroupsService);
    return this.service;
  }

  async run([idText]: string[], options: { dryRun?: boolean; wait?: boolean; timeout?: number }): Promise<void> {
    if (!/^\d{1,9}$/.test(idText ?? '')) throw new SnippetError('the code group id is a number (GET /v1/code-groups)');
    const id = Number(idText);
    const groups = await this.groups();
    if (options.dryRun) {
      const plan = await groups.removalPlan(id);
      out(`code group #${id} ${plan.group.name} (${plan.group.state}, ${CodeGroupView.of(plan.group).repoUrl})`);
      for (const c of plan.checkouts) out(`  would remove ${c.path} on ${c.server}${c.state === 'down' ? ' (down: left there)' : ''}`);
      if (plan.refused) throw new SnippetError(`refused: ${plan.refused}`);
      out('dry run: nothing changed');
      return;
    }
    const { group, jobId } = await groups.remove(id, { actor: cliActor(), via: 'cli' });
    out(`code group #${id} ${group.name} retired; removal job ${jobId} queued`);
    if (options.wait === false) return;

    const startedAt = Date.now();
    let after = 0;
    for (;;) {
      const job = await this.jobs.get(jobId);
      for (const line of await this.jobs.output(jobId, after)) {
        after = line.id;
        out(`[attempt ${line.attempt}] ${line.level === 'error' ? 'ERROR ' : ''}${line.line}`);
      }
      if (FINISHED.includes(job.state)) {
        if (job.state !== 'done') throw new SnippetError(`removal job ${jobId} ended ${job.state}${job.lastError ? `: ${job.lastError}` : ''}; rerun it with rerun-queue-item ${jobId}`);
        out(`code group #${id} ${group.name} removed`);
        return;
      }
      if (Date.now() - startedAt > (options.timeout ?? 300) * 1000) {
        throw new SnippetError(`removal job ${jobId} still ${job.state}: is an engine with the worker role running on this catalog? Follow it with rerun-queue-item ${jobId} --follow`);
      }
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
  }

  @Option({ flags: '--dry-run', description: 'show what would be removed, or why it is refused; change nothing' })
  parseDryRun(): boolean {
    return true;
  }

  @Option({ flags: '--no-wait', description: 'queue the removal and return, without following it' })
  parseNoWait(): boolean {
    return false;
  }

  @Option({ flags: '--timeout <seconds>', description: 'stop following after this long (default 300; the job goes on)' })
  parseTimeout(value: string): number {
    if (!/^\d{1,6}$/.test(value)) throw new SnippetError('--timeout is a number of seconds');
    return Number(value);
  }
}
