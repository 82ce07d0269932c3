import { readFileSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import cliProgress from 'cli-progress';
import { Command, CommandRunner, Option } from 'nest-commander';
import { MAX_SNIPPET_BYTES, MAX_SNIPPET_NAME, SNIPPET_NAME, SqlSnippetsService, type SqlSnippetPlanView, type SqlSnippetReportView } from '@app/codebase-update';
import { DomainError } from '@app/common';
import { err, out, SnippetError, table } from './cli-output.js';
import { cliActor } from './token-create.command.js';

interface ApplyOptions {
  file?: string;
  installs?: number[];
  group?: number;
  name?: string;
  force?: boolean;
  dryRun?: boolean;
  wait?: boolean;
  timeout?: number;
}

/**
 * The seed's "Specific snippet updating" (POST /v1/sql-snippets): one SQL
 * file run on chosen installs (or every live install of a code group) as
 * each install's own database user, recorded as `snippet:<name>`. Queues
 * it, then follows the report with a progress bar and prints a line per
 * install; exit 1 when refused or when any install failed.
 */
@Command({
  name: 'sql:apply',
  description: "run one SQL snippet on chosen installs (--installs 1,2,3 or --group G) as each install's database user; refused where it ran already unless --force",
})
export class SqlApplyCommand extends CommandRunner {
  constructor(private readonly snippets: SqlSnippetsService) {
    super();
  }

  async run(_args: string[], options: ApplyOptions): Promise<void> {
    if (!options.file) throw new SnippetError('--file <path> is required (the SQL to run)');
    if ((options.installs === undefined) === (options.group === undefined)) throw new SnippetError('give --installs 1,2,3 or --group <id> (one of the two)');
    const size = statSync(options.file, { throwIfNoEntry: false })?.size;
    if (size === undefined) throw new SnippetError(`${options.file}: no such file`);
    if (size > MAX_SNIPPET_BYTES) throw new SnippetError(`${options.file} is ${size} bytes; a snippet is at most ${MAX_SNIPPET_BYTES}`);
    const sql = readFileSync(options.file, 'utf8');
    const name = options.name ?? basename(options.file).replace(/\.sql$/i, '');
    if (!SNIPPET_NAME.test(name) || name.length > MAX_SNIPPET_NAME) throw new SnippetError(`the snippet's name "${name}" is not letters, digits, _ . - (at most ${MAX_SNIPPET_NAME}): give --name`);

    const request = { name, sql, force: options.force ?? false, dryRun: options.dryRun ?? false, ...(options.installs ? { installIds: options.installs } : { groupId: options.group }) };
    let result;
    try {
      result = await this.snippets.apply(request, { actor: cliActor(), via: 'cli' });
    } catch (e) {
      if (e instanceof DomainError) throw new SnippetError(`${e.code}: ${e.message}`);
      throw e;
    }
    if ('dryRun' in result) return printPlan(result);
    out(`snippet ${name}: update ${result.updateId} queued (job ${result.jobId}); report: GET /v1/sql-snippets/${result.updateId}`);
    if (options.wait === false) return;
    const report = await this.follow(result.updateId, options.timeout ?? 1800);
    printReport(report);
    if (report.counts.failed! > 0) throw new SnippetError(`snippet ${name} failed on ${report.counts.failed} of ${report.counts.total} install(s)`);
  }

  /** Polls the report until it ends, with a live bar (installs ended / total, failures). */
  private async follow(updateId: number, timeoutS: number): Promise<SqlSnippetReportView> {
    const bar = new cliProgress.SingleBar(
      { format: 'installs {bar} {value}/{total} | failed {failed} | ETA {eta_formatted}', hideCursor: true, clearOnComplete: false, stream: process.stdout },
      cliProgress.Presets.shades_classic,
    );
    let report = await this.snippets.report(updateId);
    bar.start(report.counts.total!, 0, { failed: 0 });
    const deadline = Date.now() + timeoutS * 1000;
    try {
      for (;;) {
        const ended = report.counts.done! + report.counts.failed! + report.counts.skipped!;
        bar.update(ended, { failed: report.counts.failed });
        if (report.state === 'done' || report.state === 'failed') return report;
        if (Date.now() > deadline) throw new SnippetError(`update ${updateId} not done after ${timeoutS} s (is a worker running?)`);
        await new Promise((resolve) => setTimeout(resolve, 300));
        report = await this.snippets.report(updateId);
      }
    } finally {
      bar.stop();
    }
  }

  @Option({ flags: '--file <path>', description: 'the SQL file (at most 256 kB)' })
  parseFile(value: string): string {
    return value;
  }

  @Option({ flags: '--installs <ids>', description: 'comma-separated install ids (live), up to 1000' })
  parseInstalls(value: string): number[] {
    if (!/^\d{1,9}(,\d{1,9})*$/.test(value)) throw new SnippetError('--installs is a comma-separated list of install ids: 1,2,3');
    const ids = [...new Set(value.split(',').map(Number))];
    if (ids.length > 1000 || ids.some((id) => id < 1)) throw new SnippetError('--installs takes 1 to 1000 install ids');
    return ids;
  }

  @Option({ flags: '--group <id>', description: 'every live install of this code group' })
  parseGroup(value: string): number {
    if (!/^\d{1,9}$/.test(value) || Number(value) < 1) throw new SnippetError('--group is a code group id');
    return Number(value);
  }

  @Option({ flags: '--name <name>', description: "recorded as snippet:<name> (default: the file's name without .sql)" })
  parseName(value: string): string {
    return value;
  }

  @Option({ flags: '--force', description: 'run it again where it ran already (its database_updates row is updated)' })
  parseForce(): boolean {
    return true;
  }

  @Option({ flags: '--dry-run', description: 'print the plan (installs, statements) and change nothing' })
  parseDryRun(): boolean {
    return true;
  }

  @Option({ flags: '--no-wait', description: 'queue it and return' })
  parseNoWait(): boolean {
    return false;
  }

  @Option({ flags: '--timeout <seconds>', description: 'how long to follow it (default 1800)' })
  parseTimeout(value: string): number {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > 86_400) throw new SnippetError('--timeout must be a number of seconds');
    return n;
  }
}

function printPlan(plan: SqlSnippetPlanView): void {
  out(`dry run: snippet ${plan.name} (sha256 ${plan.checksum}) on ${plan.installs.length} install(s); nothing changed`);
  out(table(['install', 'fs name', 'group', 'db server', 'statements', 'has it'], plan.installs.map((i) => [i.installId, i.fsName, i.groupId, i.dbServer, i.statements, i.applied ? (plan.force ? 'yes (force: runs again)' : 'yes (refused without --force)') : 'no'])));
}

function printReport(report: SqlSnippetReportView): void {
  out(table(
    ['install', 'state', 'ms', 'error'],
    report.items.map((i) => [i.installId, i.state, i.sqlMs, i.state === 'failed' ? `${i.errorFile ? `${i.errorFile} line ${i.errorLine}: ` : ''}${i.error}` : i.error]),
  ));
  for (const i of report.items.filter((x) => x.errorStatement)) err(`install ${i.installId} statement: ${i.errorStatement}`);
  out(`snippet ${report.name}: ${report.state} (${report.counts.done} done, ${report.counts.skipped} skipped, ${report.counts.failed} failed of ${report.counts.total})`);
}
