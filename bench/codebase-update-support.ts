import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import type { DataSource } from 'typeorm';
import { fetchSite } from '../test/support/web-installs.js';

export interface LoopTarget {
  installId: number;
  hostname: string;
  ip: string;
}

export interface LoopFigures {
  requests: number;
  /** 5xx answers and requests that got no answer (refused, reset, timed out). */
  errors: number;
  fiveXx: number;
  noAnswer: number;
  /** Answers other than 200 with the shop's own front page (errors included). */
  non200: number;
  /** The fewest requests any install got. */
  minPerTarget: number;
  samples: string[];
}

/**
 * Asks every target's front page through nginx on its dispatcher (the Host
 * header, the site's IP there), over and over, `concurrency` requests at a
 * time, each on a new connection, and counts what was not the shop's page.
 */
export class RequestLoop {
  private running = false;
  private workers: Promise<void>[] = [];
  private next = 0;
  private figures = this.empty();
  private perTarget = new Map<string, number>();

  constructor(
    private readonly targets: readonly LoopTarget[],
    private readonly concurrency: number,
  ) {}

  start(): void {
    this.running = true;
    this.workers = Array.from({ length: this.concurrency }, () => this.work());
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.workers);
    this.workers = [];
  }

  reset(): void {
    this.figures = this.empty();
    this.perTarget = new Map();
  }

  snapshot(): LoopFigures {
    const counts = this.targets.map((t) => this.perTarget.get(key(t)) ?? 0);
    return { ...this.figures, samples: [...this.figures.samples], minPerTarget: counts.length ? Math.min(...counts) : 0 };
  }

  private empty(): LoopFigures {
    return { requests: 0, errors: 0, fiveXx: 0, noAnswer: 0, non200: 0, minPerTarget: 0, samples: [] };
  }

  private async work(): Promise<void> {
    while (this.running) {
      const target = this.targets[this.next++ % this.targets.length]!;
      let problem: string | null = null;
      try {
        const page = await fetchSite(target.ip, target.hostname, '/', { timeoutMs: 10_000 });
        if (page.status >= 500) {
          this.figures.fiveXx++;
          this.figures.errors++;
          problem = `HTTP ${page.status}: ${page.body.slice(0, 120)}`;
        } else if (page.status !== 200 || !page.body.startsWith(`shop ${target.hostname}: `)) {
          problem = `HTTP ${page.status}: ${page.body.slice(0, 120)}`;
        }
      } catch (error) {
        this.figures.noAnswer++;
        this.figures.errors++;
        problem = `no answer: ${(error as Error).message}`;
      }
      this.figures.requests++;
      this.perTarget.set(key(target), (this.perTarget.get(key(target)) ?? 0) + 1);
      if (problem !== null) {
        this.figures.non200++;
        if (this.figures.samples.length < 5) this.figures.samples.push(`${target.hostname} via ${target.ip}: ${problem}`);
      }
    }
  }
}

const key = (t: LoopTarget) => `${t.installId}@${t.ip}`;

type Spread = { p50: number; p10: number; p90: number; max: number } | null;
const spread = (xs: number[]): Spread => {
  if (xs.length === 0) return null;
  const sorted = [...xs].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
  return { p50: Math.round(at(50)), p10: Math.round(at(10)), p90: Math.round(at(90)), max: Math.round(sorted[sorted.length - 1]!) };
};

export interface Phases {
  /** POST's update start to the first child job's creation: the release fetched, made, synced and recorded (ms). */
  release_ms: number | null;
  /** The canary's child job, created to finished (ms). */
  canary_ms: number | null;
  /** The canary's end to the last child's end (ms). */
  others_ms: number | null;
  /** Children: created to claimed by the worker (ms). */
  child_queue_wait_ms: Spread;
  /** Children: claimed to finished (ms). */
  child_run_ms: Spread;
  /** A child's end to the next child's claim, when one was waiting to be made or claimed (the parent's watch, the worker's slots). */
  slot_idle_ms: Spread;
  /** Sum of child runs over (span of children x concurrency): 1 means every slot always busy. */
  slot_use: number | null;
  /** Parent job runs (one per watch: each defers 250 ms). */
  parent_runs: number;
  /** Children claimed at once, at most. */
  max_children_running: number;
  /** Each install's steps from its job's output lines (timestamps of the output's 250 ms flushes; SQL from the item's own sqlMs). */
  steps_ms: Record<string, Spread>;
}

/** Where a rollout's time went, from its jobs' and items' own records. */
export async function phaseBreakdown(ds: DataSource, parentJobId: number, startedAtMs: number): Promise<Phases> {
  const toMs = (d: Date | string | null) => (d === null ? null : new Date(d).getTime());
  const children: { id: number; created: number; started: number | null; finished: number | null; installId: number }[] = (
    await ds.query('SELECT id, created_at AS c, started_at AS s, finished_at AS f, payload AS p FROM jobs WHERE parent_id = ? ORDER BY id', [parentJobId])
  ).map((r: { id: number; c: Date; s: Date | null; f: Date | null; p: string }) => ({ id: Number(r.id), created: toMs(r.c)!, started: toMs(r.s), finished: toMs(r.f), installId: JSON.parse(r.p).installId }));
  const items: { installId: number; canary: number; sqlMs: number | null }[] = await ds.query(
    'SELECT i.install_id AS installId, i.canary AS canary, i.sql_ms AS sqlMs FROM code_update_items i JOIN code_updates u ON u.id = i.update_id WHERE u.job_id = ?',
    [parentJobId],
  );
  const canaryInstall = items.find((i) => Number(i.canary) === 1)?.installId;
  const canary = children.find((c) => c.installId === Number(canaryInstall)) ?? null;
  const ran = children.filter((c) => c.started !== null && c.finished !== null) as { id: number; created: number; started: number; finished: number; installId: number }[];
  const others = ran.filter((c) => c !== canary);
  const lastEnd = ran.length ? Math.max(...ran.map((c) => c.finished)) : null;
  // The next claim after each end, among the children made by then.
  const starts = others.map((c) => c.started).sort((a, b) => a - b);
  const ends = others.map((c) => c.finished).sort((a, b) => a - b);
  const idle: number[] = [];
  for (const end of ends.slice(0, Math.max(0, ends.length - 1))) {
    const next = starts.find((s) => s >= end);
    if (next !== undefined) idle.push(next - end);
  }
  let maxRunning = 0;
  for (const c of ran) maxRunning = Math.max(maxRunning, ran.filter((o) => o.started <= c.started && o.finished > c.started).length);
  const span = others.length ? Math.max(...others.map((c) => c.finished)) - Math.min(...others.map((c) => c.started)) : 0;
  const concurrency = Number((await ds.query('SELECT concurrency FROM code_updates WHERE job_id = ?', [parentJobId]))[0]?.concurrency ?? 4);
  const parentRuns: { n: number }[] = await ds.query("SELECT COUNT(*) AS n FROM job_logs WHERE job_id = ? AND line LIKE 'deferred %'", [parentJobId]);

  // Steps, per install, from its job's output: the line each step ends with.
  const marks: [string, RegExp][] = [
    ['tree_and_config', /: rendered /],
    ['switch', /: switched to /],
    ['sql', /: applied /],
    ['caches', /: emptied /],
    ['probe', /: on [0-9a-f]{12}$/],
  ];
  const logs: { job: number; line: string; at: Date }[] = ran.length
    ? await ds.query('SELECT job_id AS job, line, created_at AS at FROM job_logs WHERE job_id IN (?) ORDER BY id', [ran.map((c) => c.id)])
    : [];
  const steps: Record<string, number[]> = Object.fromEntries(marks.map(([name]) => [name, []]));
  for (const c of ran) {
    const own = logs.filter((l) => Number(l.job) === c.id);
    let previous = c.started;
    for (const [name, mark] of marks) {
      const found = [...own].reverse().find((l) => mark.test(l.line));
      if (!found) continue;
      const at = toMs(found.at)!;
      steps[name]!.push(at - previous);
      previous = at;
    }
  }
  const stepsMs: Record<string, Spread> = Object.fromEntries(Object.entries(steps).map(([k, v]) => [k, spread(v)]));
  stepsMs.sql_item_sqlMs = spread(items.map((i) => Number(i.sqlMs)).filter((x) => Number.isFinite(x)));
  return {
    release_ms: children.length ? Math.min(...children.map((c) => c.created)) - startedAtMs : null,
    canary_ms: canary?.finished ? canary.finished - canary.created : null,
    others_ms: canary?.finished && lastEnd ? lastEnd - canary.finished : null,
    child_queue_wait_ms: spread(ran.map((c) => c.started - c.created)),
    child_run_ms: spread(ran.map((c) => c.finished - c.started)),
    slot_idle_ms: spread(idle),
    slot_use: span > 0 ? Number((others.reduce((s, c) => s + (c.finished - c.started), 0) / (span * concurrency)).toFixed(3)) : null,
    parent_runs: Number(parentRuns[0]?.n ?? 0) + 1,
    max_children_running: maxRunning,
    steps_ms: stepsMs,
  };
}

/** CPU time (ticks) of a process tree: every process's own, plus what its reaped children used (so exits between two reads are counted once). */
export function treeCpuTicks(root: number): { self: number; children: number } {
  const procs = new Map<number, { ppid: number; own: number; reaped: number }>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    procs.set(Number(entry), { ppid: Number(f[1]), own: Number(f[11]) + Number(f[12]), reaped: Number(f[13]) + Number(f[14]) });
  }
  const rootProc = procs.get(root);
  if (!rootProc) return { self: 0, children: 0 };
  let children = rootProc.reaped;
  const inTree = new Set([root]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, p] of procs) {
      if (!inTree.has(pid) && inTree.has(p.ppid)) {
        inTree.add(pid);
        children += p.own + p.reaped;
        grew = true;
      }
    }
  }
  return { self: rootProc.own, children };
}

/** Linux's USER_HZ: /proc reports CPU time in these ticks. */
export const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** The machine's busy CPU time (ticks, all cores), from /proc/stat. */
export function machineBusyTicks(): number {
  const [, ...fields] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
  const n = fields.map(Number);
  return n.slice(0, 8).reduce((a, b) => a + b, 0) - n[3]! - n[4]!;
}
