import cliProgress from 'cli-progress';
import { Command, CommandRunner, Option } from 'nest-commander';
import { DomainError } from '@app/common';
import { DatabaseMovesService, DEFAULT_MOVE_CONCURRENCY, MAX_MOVE_CONCURRENCY, type DatabaseMovePlanView, type DatabaseMoveReportView } from '@app/database-move';
import { err, out, SnippetError, table } from './cli-output.js';
import { parseTimeout } from './follow-job.js';
import { cliActor } from './token-create.command.js';

interface MoveOptions {
  from?: string;
  to?: string;
  dryRun?: boolean;
  concurrency?: number;
  wait?: boolean;
  timeout?: number;
}

const refused = (e: unknown): never => {
  if (e instanceof DomainError) {
    const problems = (e.details.problems as string[] | undefined) ?? [];
    for (const problem of problems) err(`  ${problem}`);
    throw new SnippetError(problems.length ? `${e.code}: ${problems.length} precondition(s) fail (listed above); nothing changed` : `${e.code}: ${e.message}`);
  }
  throw e;
};

/**
 * The seed's wished-for `move_database --destination` (POST
 * /v1/database-servers/move), run from either dispatcher: every install
 * whose database is on --from pointed at --to, on every server. Follows
 * the report with a progress bar, prints a line per install, exit 1 when
 * any failed. `--dry-run` prints the diff of every config file that would
 * change and the preconditions that fail.
 */
@Command({ name: 'move-database', description: 'point every install whose database is on --from at --to (a replica holding their databases and users); --dry-run prints every config diff' })
export class MoveDatabaseCommand extends CommandRunner {
  constructor(private readonly moves: DatabaseMovesService) {
    super();
  }

  async run(args: string[], options: MoveOptions): Promise<void> {
    if (args.length > 0) throw new SnippetError(`unexpected argument ${args[0]}: move-database --from <server> --to <server> [--dry-run]`);
    if (!options.from || !options.to) throw new SnippetError('--from <server> and --to <server> are required (id or hostname)');
    const [from, to] = await Promise.all([this.moves.serverRef(options.from), this.moves.serverRef(options.to)]).catch(refused);
    const result = await this.moves
      .start({ from: from.id, to: to.id, dryRun: options.dryRun ?? false, ...(options.concurrency ? { concurrency: options.concurrency } : {}) }, { actor: cliActor(), via: 'cli' })
      .catch(refused);
    if ('dryRun' in result) return printPlan(result);
    out(`database move ${result.moveId} from ${result.from} to ${result.to} queued (job ${result.jobId}, ${result.installIds.length} install(s)); report: GET /v1/database-servers/moves/${result.moveId}`);
    if (options.wait === false) return;
    await followAndPrint(this.moves, result.moveId, options.timeout ?? 3600);
  }

  @Option({ flags: '--from <server>', description: 'the database server the installs are on (id or hostname)' })
  parseFrom(value: string): string {
    return value;
  }

  @Option({ flags: '--to <server>', description: 'the database server they move to (id or hostname)' })
  parseTo(value: string): string {
    return value;
  }

  @Option({ flags: '--dry-run', description: 'print the diff of every config file that would change, and the preconditions that fail; change nothing' })
  parseDryRun(): boolean {
    return true;
  }

  @Option({ flags: '--concurrency <n>', description: `installs moved at once (default ${DEFAULT_MOVE_CONCURRENCY})` })
  parseConcurrency(value: string): number {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > MAX_MOVE_CONCURRENCY) throw new SnippetError(`--concurrency is 1 to ${MAX_MOVE_CONCURRENCY}`);
    return n;
  }

  @Option({ flags: '--no-wait', description: 'queue it and return' })
  parseNoWait(): boolean {
    return false;
  }

  @Option({ flags: '--timeout <seconds>', description: 'how long to follow it (default 3600)' })
  parseTimeout(value: string): number {
    return parseTimeout(value);
  }
}

async function followAndPrint(moves: DatabaseMovesService, moveId: number, timeoutS: number): Promise<void> {
  const bar = new cliProgress.SingleBar(
    { format: 'installs {bar} {value}/{total} | failed {failed} | ETA {eta_formatted}', hideCursor: true, clearOnComplete: false, stream: process.stdout, noTTYOutput: true, notTTYSchedule: 2_000 },
    cliProgress.Presets.shades_classic,
  );
  let report = await moves.report(moveId);
  bar.start(report.counts.total!, 0, { failed: 0 });
  const deadline = Date.now() + timeoutS * 1000;
  try {
    for (;;) {
      bar.update(report.counts.done! + report.counts.failed! + report.counts.skipped!, { failed: report.counts.failed });
      if (report.state === 'done' || report.state === 'failed') break;
      if (Date.now() > deadline) throw new SnippetError(`database move ${moveId} not done after ${timeoutS} s (is a worker running?)`);
      await new Promise((resolve) => setTimeout(resolve, 300));
      report = await moves.report(moveId);
    }
  } finally {
    bar.stop();
  }
  printReport(report);
  if (report.state !== 'done') throw new SnippetError(`database move ${moveId} ${report.state}: ${report.error ?? ''}`.trim());
}

function printPlan(plan: DatabaseMovePlanView): void {
  const files = plan.installs.reduce((n, i) => n + i.files.length, 0);
  out(`dry run: move of ${plan.installs.length} install(s) from ${plan.from} to ${plan.to}: ${files} config file(s) would change; nothing changed`);
  for (const install of plan.installs) for (const file of install.files) out(file.diff.trimEnd());
  if (plan.problems.length > 0) {
    out(`${plan.problems.length} precondition(s) fail: the move would be refused`);
    for (const problem of plan.problems) out(`  ${problem}`);
  } else {
    out('preconditions: met');
  }
}

function printReport(report: DatabaseMoveReportView): void {
  out(table(['install', 'state', 'files', 'caches', 'error'], report.items.map((i) => [i.installId, i.state, i.filesRendered, i.cachesCleared ? 'cleared' : '', i.error])));
  out(`database move ${report.id}: ${report.state} (${report.counts.done} done, ${report.counts.skipped} skipped, ${report.counts.failed} failed of ${report.counts.total})`);
}
