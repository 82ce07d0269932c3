import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { Server, StartupMount } from '@app/catalog';
import { checkServerPath, ServerAccess } from '@app/hosts';
import { ftpDirOf, mountPoints, mountsRecordOf, parseMountsRecord, planMounts, renderMountsRecord, type BindMount, type MountFacts } from './bind-mounts.plan.js';

type Log = (line: string) => void;

/** What one run did on one server. */
export interface MountsRun {
  server: string;
  mounted: string[];
  unmounted: string[];
  kept: number;
  skipped: { target: string; why: string }[];
  failed: { target: string; problem: string }[];
}

/**
 * The record and the mount table, then per mount its two paths: the
 * record's lines, `M` the mount table, `P target sourceKind targetKind same`.
 */
const FACTS_SCRIPT = String.raw`
rec=$1; shift
[ -f "$rec" ] && [ ! -L "$rec" ] && sed 's/^/R\t/' "$rec"
sed 's/^/M /' /proc/self/mountinfo
kind() { if [ -L "$1" ]; then echo l; elif [ -d "$1" ]; then echo d; elif [ -f "$1" ]; then echo f; else echo -; fi; }
while [ $# -gt 1 ]; do
  s=$1; t=$2; shift 2
  same=0
  if [ -e "$s" ] && [ -e "$t" ] && [ "$(stat -c %d:%i -- "$s")" = "$(stat -c %d:%i -- "$t")" ]; then same=1; fi
  printf 'P\t%s\t%s\t%s\t%s\n' "$t" "$(kind "$s")" "$(kind "$t")" "$same"
done
exit 0
`;

/** Unmounts (`u target times`) then mounts (`m source target`), each on its own: one failing is reported (`fail ...`) and the others go on. */
const APPLY_SCRIPT = String.raw`
while [ $# -gt 0 ]; do
  op=$1
  if [ "$op" = u ]; then
    t=$2; n=$3; shift 3; i=0; ok=1
    while [ $i -lt $n ]; do err=$(umount -- "$t" 2>&1) || { ok=0; printf 'fail\t%s\t%s\n' "$t" "$err"; break; }; i=$((i+1)); done
    [ $ok = 1 ] && printf 'unmounted\t%s\n' "$t"
  else
    s=$2; t=$3; shift 3
    if err=$(mount --bind -- "$s" "$t" 2>&1); then printf 'mounted\t%s\n' "$t"; else printf 'fail\t%s\t%s\n' "$t" "$err"; fi
  fi
done
exit 0
`;

/**
 * The seed's cron_mount: every server's bind mounts are its
 * `startup_mounts` rows (an install's copied paths shown in its FTP tree).
 * Idempotent: what is missing is mounted (after a reboot: all of them),
 * what lost its row is unmounted, and only the engine's own mounts are
 * ever touched: targets inside an install's FTP tree
 * (`<home root>/<install>/ftp/<name>`) that the engine recorded in
 * `<home root>/.ftp/mounts` before mounting them (see planMounts).
 */
@Injectable()
export class BindMounts {
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly access: ServerAccess,
  ) {}

  /** One run over every server that is up and holds homes (dispatchers) or rows; one failing does not stop the others (the run fails at the end, naming it). */
  async apply(options: { log?: Log } = {}): Promise<MountsRun[]> {
    const log = options.log ?? (() => undefined);
    const rows = await this.dataSource.getRepository(StartupMount).find({ order: { id: 'ASC' } });
    const withRows = new Set(rows.map((r) => r.serverId));
    const servers = (await this.dataSource.getRepository(Server).find({ order: { id: 'ASC' } })).filter((s) => s.state !== 'down' && (withRows.has(s.id) || s.roles.includes('dispatcher')));
    const runs: MountsRun[] = [];
    const failures: string[] = [];
    for (const server of servers) {
      try {
        const run = await this.applyServer(server, { rows: rows.filter((r) => r.serverId === server.id) });
        runs.push(run);
        if (run.mounted.length || run.unmounted.length || run.skipped.length || run.failed.length) {
          log(`${server.hostname}: ${run.mounted.length} mounted, ${run.unmounted.length} unmounted, ${run.kept} in place`);
        }
        for (const t of run.mounted) log(`${server.hostname}: mounted ${t}`);
        for (const t of run.unmounted) log(`${server.hostname}: unmounted ${t}`);
        for (const s of run.skipped) log(`${server.hostname}: ${s.target} not mounted: ${s.why}`);
        for (const f of run.failed) log(`${server.hostname}: ${f.target} FAILED: ${f.problem}`);
        if (run.failed.length > 0) failures.push(`${server.hostname}: ${run.failed.map((f) => f.target).join(', ')}`);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        log(`${server.hostname}: ${message}`);
        failures.push(`${server.hostname}: ${message}`);
      }
    }
    if (failures.length > 0) throw new Error(`bind mounts failed on ${failures.join('; ')}`);
    return runs;
  }

  /**
   * Makes one server's mounts its rows (read from the catalog unless
   * given). `only`: just these targets (an install's removal unmounts its
   * own after deleting its rows).
   */
  async applyServer(server: Server, options: { rows?: readonly BindMount[]; only?: ReadonlySet<string> } = {}): Promise<MountsRun> {
    const exec = this.access.executorFor(server);
    const rows = (options.rows ?? (await this.dataSource.getRepository(StartupMount).find({ where: { serverId: server.id }, order: { id: 'ASC' } }))).map((r) => ({ source: r.source, target: r.target }));
    const recordPath = checkServerPath(server, mountsRecordOf(server.homeRoot));
    const pairs = (list: readonly BindMount[]) => list.filter((m) => !m.source.includes('\n') && !m.target.includes('\n') && m.source.startsWith('/') && m.target.startsWith('/')).flatMap((m) => [m.source, m.target]);
    const out = await exec.mustRun(server, ['sh', '-c', FACTS_SCRIPT, 'mount-facts', recordPath, ...pairs(rows)], { timeoutMs: 60_000 });
    const record = parseMountsRecord(out.split('\n').filter((l) => l.startsWith('R\t')).map((l) => l.slice(2)).join('\n'));
    const mounted = mountPoints(out.split('\n').filter((l) => l.startsWith('M ')).map((l) => l.slice(2)).join('\n'));
    const facts = new Map<string, MountFacts>();
    for (const line of out.split('\n').filter((l) => l.startsWith('P\t'))) {
      const [, target, sourceKind, targetKind, same] = line.split('\t') as [string, string, string, string, string];
      facts.set(target, { sourceKind, targetKind, sameFile: same === '1' });
    }
    const plan = planMounts({ homeRoot: server.homeRoot, rows, record, mounted, facts, only: options.only });
    const run: MountsRun = { server: server.hostname, mounted: [], unmounted: [], kept: plan.kept, skipped: plan.skipped, failed: [] };
    if (plan.mount.length === 0 && plan.unmount.length === 0) {
      if (renderMountsRecord(plan.intent) !== renderMountsRecord(record)) await this.writeRecord(server, plan.intent);
      return run;
    }
    // Recorded before anything is mounted: a crash after the mount leaves a mount the next run knows as its own.
    await this.writeRecord(server, plan.intent);
    const args = [
      ...plan.unmount.flatMap((u) => ['u', checkServerPath(server, u.target), String(u.times)]),
      ...plan.mount.flatMap((m) => ['m', checkServerPath(server, m.source), checkServerPath(server, m.target)]),
    ];
    const result = await exec.mustRun(server, ['sh', '-c', APPLY_SCRIPT, 'bind-mounts', ...args], { timeoutMs: 120_000 });
    for (const line of result.split('\n').filter(Boolean)) {
      const [what, target, problem] = line.split('\t') as [string, string, string?];
      if (what === 'mounted') run.mounted.push(target);
      else if (what === 'unmounted') run.unmounted.push(target);
      else run.failed.push({ target, problem: problem ?? 'failed' });
    }
    // What was unmounted and not mounted again is no longer the engine's.
    const after = plan.intent.filter((m) => !(run.unmounted.includes(m.target) && !run.mounted.includes(m.target)));
    if (renderMountsRecord(after) !== renderMountsRecord(plan.intent)) await this.writeRecord(server, after);
    return run;
  }

  private async writeRecord(server: Server, mounts: readonly BindMount[]): Promise<void> {
    const exec = this.access.executorFor(server);
    await exec.mkdirs(server, [ftpDirOf(server.homeRoot)], { mode: 0o755 });
    await exec.writeFile(server, mountsRecordOf(server.homeRoot), renderMountsRecord(mounts), { mode: 0o644 });
  }
}
