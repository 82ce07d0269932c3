import cliProgress from 'cli-progress';
import { Command, CommandRunner, Option } from 'nest-commander';
import { RolloutsService, type RolloutPlanView, type RolloutQueuedView, type RolloutReportView } from '@app/codebase-update';
import { DomainError } from '@app/common';
import { err, out, SnippetError, table } from './cli-output.js';
import { cliActor } from './token-create.command.js';

interface UpdateOptions {
  revision?: string;
  canary?: number;
  concurrency?: number;
  dryRun?: boolean;
  retryFailed?: number;
  wait?: boolean;
  timeout?: number;
}

const groupIdOf = (args: string[]): number => {
  if (args.length !== 1 || !/^\d{1,9}$/.test(args[0]!) || Number(args[0]) < 1) throw new SnippetError('give the code group id: codegroup:update <group id> --revision <rev>');
  return Number(args[0]);
};

const refused = (e: unknown): never => {
  if (e instanceof DomainError) throw new SnippetError(`${e.code}: ${e.message}`);
  throw e;
};

/**
 * The seed's update_shared_code_installs.php, without the second screen
 * running `tail -f update.log` (POST /v1/code-groups/:id/updates): the
 * group rolled to a revision, canary first; follows the report with a
 * progress bar, prints a line per install, exit 1 when any failed.
 * `--retry-failed <update>` queues a failed rollout's failed installs again.
 */
@Command({
  name: 'codegroup:update',
  arguments: '<group>',
  description: 'roll a code group to a revision (new release, canary first, then the others); --dry-run prints the plan; --retry-failed <update> retries its failed installs',
})
export class CodeGroupUpdateCommand extends CommandRunner {
  constructor(private readonly rollouts: RolloutsService) {
    super();
  }

  async run(args: string[], options: UpdateOptions): Promise<void> {
    const groupId = groupIdOf(args);
    let result: RolloutQueuedView | RolloutPlanView;
    if (options.retryFailed !== undefined) {
      if (options.revision || options.dryRun) throw new SnippetError('--retry-failed takes no --revision or --dry-run: it retries what the update asked for');
      result = await this.rollouts.retryFailed(groupId, options.retryFailed, { actor: cliActor(), via: 'cli' }).catch(refused);
    } else {
      if (!options.revision) throw new SnippetError('--revision <commit|tag|branch> is required');
      const request = { revision: options.revision, dryRun: options.dryRun ?? false, ...(options.canary ? { canaryInstallId: options.canary } : {}), ...(options.concurrency ? { concurrency: options.concurrency } : {}) };
      result = await this.rollouts.start(groupId, request, { actor: cliActor(), via: 'cli' }).catch(refused);
    }
    if ('dryRun' in result) return printPlan(result);
    out(`${result.kind} ${result.updateId} of code group ${groupId} queued (job ${result.jobId}, ${result.installIds.length} install(s)${result.canaryInstallId ? `, canary ${result.canaryInstallId}` : ''}); report: GET /v1/code-groups/${groupId}/updates/${result.updateId}`);
    if (options.wait === false) return;
    await followAndPrint(this.rollouts, groupId, result.updateId, options.timeout ?? 3600);
  }

  @Option({ flags: '--revision <rev>', description: 'commit, tag or branch to roll to' })
  parseRevision(value: string): string {
    return value;
  }

  @Option({ flags: '--canary <install>', description: 'the install updated first (default: the newest live install)' })
  parseCanary(value: string): number {
    if (!/^\d{1,9}$/.test(value) || Number(value) < 1) throw new SnippetError('--canary is an install id');
    return Number(value);
  }

  @Option({ flags: '--concurrency <n>', description: 'installs updated at once after the canary (default 4)' })
  parseConcurrency(value: string): number {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > 32) throw new SnippetError('--concurrency is 1 to 32');
    return n;
  }

  @Option({ flags: '--dry-run', description: 'print the plan (installs, SQL files each would run, tree changes) and change nothing' })
  parseDryRun(): boolean {
    return true;
  }

  @Option({ flags: '--retry-failed <update>', description: "queue a failed rollout's failed installs again" })
  parseRetry(value: string): number {
    if (!/^\d{1,9}$/.test(value) || Number(value) < 1) throw new SnippetError('--retry-failed is an update id');
    return Number(value);
  }

  @Option({ flags: '--no-wait', description: 'queue it and return' })
  parseNoWait(): boolean {
    return false;
  }

  @Option({ flags: '--timeout <seconds>', description: 'how long to follow it (default 3600)' })
  parseTimeout(value: string): number {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > 86_400) throw new SnippetError('--timeout must be a number of seconds');
    return n;
  }
}

/** POST /v1/code-groups/:id/rollback: every live install back on the release before the last rollout (instant: it is still there). */
@Command({ name: 'codegroup:rollback', arguments: '<group>', description: 'switch a code group back to the release before its last rollout (SQL updates stay applied)' })
export class CodeGroupRollbackCommand extends CommandRunner {
  constructor(private readonly rollouts: RolloutsService) {
    super();
  }

  async run(args: string[], options: { dryRun?: boolean; wait?: boolean }): Promise<void> {
    const groupId = groupIdOf(args);
    const result = await this.rollouts.rollback(groupId, { dryRun: options.dryRun ?? false }, { actor: cliActor(), via: 'cli' }).catch(refused);
    if ('dryRun' in result) return printPlan(result);
    out(`rollback ${result.updateId} of code group ${groupId} queued (job ${result.jobId}, ${result.installIds.length} install(s))`);
    if (options.wait === false) return;
    await followAndPrint(this.rollouts, groupId, result.updateId, 3600);
  }

  @Option({ flags: '--dry-run', description: 'print the plan and change nothing' })
  parseDryRun(): boolean {
    return true;
  }

  @Option({ flags: '--no-wait', description: 'queue it and return' })
  parseNoWait(): boolean {
    return false;
  }
}

/** Follows the report with a live bar (installs ended / total, failures, ETA), prints it, fails when any install failed or the update stopped. */
async function followAndPrint(rollouts: RolloutsService, groupId: number, updateId: number, timeoutS: number): Promise<void> {
  const bar = new cliProgress.SingleBar(
    { format: 'installs {bar} {value}/{total} | failed {failed} | ETA {eta_formatted}', hideCursor: true, clearOnComplete: false, stream: process.stdout, noTTYOutput: true, notTTYSchedule: 2_000 },
    cliProgress.Presets.shades_classic,
  );
  let report = await rollouts.report(groupId, updateId);
  bar.start(report.counts.total!, 0, { failed: 0 });
  const deadline = Date.now() + timeoutS * 1000;
  try {
    for (;;) {
      bar.update(report.counts.done! + report.counts.failed! + report.counts.skipped!, { failed: report.counts.failed });
      if (!['planned', 'running'].includes(report.state)) break;
      if (Date.now() > deadline) throw new SnippetError(`update ${updateId} not done after ${timeoutS} s (is a worker running?)`);
      await new Promise((resolve) => setTimeout(resolve, 300));
      report = await rollouts.report(groupId, updateId);
    }
  } finally {
    bar.stop();
  }
  printReport(report);
  if (report.state !== 'done') throw new SnippetError(`${report.kind} ${updateId} ${report.state}: ${report.error ?? ''}`.trim());
}

function printPlan(plan: RolloutPlanView): void {
  out(`dry run: ${plan.kind} of code group ${plan.groupId} from ${plan.fromRevision} to ${plan.toRevision}, ${plan.installs.length} install(s), concurrency ${plan.concurrency}; nothing changed`);
  const changes = Object.entries(plan.treeChanges).filter(([, v]) => (v as string[]).length > 0);
  out(changes.length ? `tree changes: ${changes.map(([k, v]) => `${k} ${(v as string[]).join(', ')}`).join('; ')}` : 'tree changes: none');
  out(table(['install', 'fs name', 'canary', 'on', 'SQL files it would run'], plan.installs.map((i) => [i.installId, i.fsName, i.canary ? 'yes' : '', i.revision.slice(0, 12), i.sqlFiles.join(' ') || '-'])));
}

function printReport(report: RolloutReportView): void {
  out(table(
    ['install', 'canary', 'state', 'switched', 'sql', 'ms', 'caches', 'probe', 'error'],
    report.items.map((i) => [i.installId, i.canary ? 'yes' : '', i.state, i.switched ? 'yes' : 'no', i.sqlApplied, i.sqlMs, i.cachesCleared ? 'cleared' : '', i.probe, i.errorFile ? `${i.errorFile} line ${i.errorLine}: ${i.error}` : i.error]),
  ));
  for (const i of report.items.filter((x) => x.errorStatement)) err(`install ${i.installId} statement: ${i.errorStatement}`);
  out(`${report.kind} ${report.id}: ${report.state} (${report.counts.done} done, ${report.counts.skipped} skipped, ${report.counts.failed} failed of ${report.counts.total})`);
}
