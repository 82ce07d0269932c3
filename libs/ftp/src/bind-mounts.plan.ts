import { posix } from 'node:path';

/** A bind mount: `source` shown at `target`. */
export interface BindMount {
  source: string;
  target: string;
}

/** What a server says about one mount's paths: their kinds (`d`, `f`, `l` link, `-` missing) and whether the target shows the source (same device and inode). */
export interface MountFacts {
  sourceKind: string;
  targetKind: string;
  sameFile: boolean;
}

/** What one run does on one server. */
export interface MountPlan {
  /** Unmounted first: the engine's mounts whose row went (or whose source changed), `times` when stacked. */
  unmount: { target: string; times: number }[];
  mount: BindMount[];
  /** Rows not applied, and why (outside the FTP tree, a foreign mount there, a missing path). */
  skipped: { target: string; why: string }[];
  /** The engine's record before the first mount (its mounts and those it is about to make: a crash between never loses one). */
  intent: BindMount[];
  /** Its mounts already in place. */
  kept: number;
}

/** `<home root>/.ftp`: the engine's FTP files of a server (its mounts record, ProFTPD's config, pid file, logs). */
export const FTP_DIR_NAME = '.ftp';
export const ftpDirOf = (homeRoot: string): string => posix.join(homeRoot.replace(/\/+$/, '') || '/', FTP_DIR_NAME);
/** The record of the bind mounts the engine made on a server: one `source<TAB>target` line each. */
export const mountsRecordOf = (homeRoot: string): string => posix.join(ftpDirOf(homeRoot), 'mounts');

const SAFE_PATH = /^\/[^\t\n\\]*$/;

/**
 * Where the engine mounts anything: `<home root>/<install>/ftp/<one name>`,
 * an install's FTP tree, never elsewhere (a row pointing outside, or with
 * `..`, is refused).
 */
export function insideFtpTree(homeRoot: string, target: string): boolean {
  if (!SAFE_PATH.test(target) || posix.normalize(target) !== target) return false;
  const root = homeRoot.replace(/\/+$/, '');
  if (!target.startsWith(`${root}/`)) return false;
  const parts = target.slice(root.length + 1).split('/');
  return parts.length === 3 && parts[1] === 'ftp' && parts.every((p) => p !== '' && p !== '.' && p !== '..' && !p.startsWith('.'));
}

export function parseMountsRecord(text: string): BindMount[] {
  return text
    .split('\n')
    .filter((l) => l.includes('\t'))
    .map((l) => {
      const [source, target] = l.split('\t') as [string, string];
      return { source, target };
    });
}

export function renderMountsRecord(mounts: readonly BindMount[]): string {
  const seen = new Set<string>();
  const lines = [...mounts].filter((m) => !seen.has(m.target) && seen.add(m.target)).sort((a, b) => (a.target < b.target ? -1 : a.target > b.target ? 1 : 0));
  return lines.map((m) => `${m.source}\t${m.target}\n`).join('');
}

/** The mount points of /proc/self/mountinfo (field 5, its octal escapes decoded), with how many times each is mounted. */
export function mountPoints(mountinfo: string): Map<string, number> {
  const points = new Map<string, number>();
  for (const line of mountinfo.split('\n')) {
    const field = line.split(' ')[4];
    if (!field) continue;
    const path = field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    points.set(path, (points.get(path) ?? 0) + 1);
  }
  return points;
}

/**
 * What to do on a server so that its mounts are its rows, touching only
 * the engine's own: a mount is the engine's when its target is recorded
 * (the record is written before mounting and after unmounting, so a crash
 * in between leaves a recorded target, never an unrecorded mount of ours).
 * A row whose target something else already covers is left (skipped, said
 * so); a recorded mount without a row is unmounted; a recorded target that
 * is no longer mounted (a reboot) is mounted again if its row is there.
 * `only`: restrict the run to these targets (an install's removal).
 */
export function planMounts(input: {
  homeRoot: string;
  rows: readonly BindMount[];
  record: readonly BindMount[];
  mounted: ReadonlyMap<string, number>;
  facts: ReadonlyMap<string, MountFacts>;
  only?: ReadonlySet<string>;
}): MountPlan {
  const { homeRoot, mounted, facts, only } = input;
  const inScope = (target: string) => !only || only.has(target);
  const recorded = new Map(input.record.map((m) => [m.target, m]));
  const rows = new Map(input.rows.map((m) => [m.target, m]));
  const plan: MountPlan = { unmount: [], mount: [], skipped: [], intent: [...input.record], kept: 0 };

  for (const [target, own] of recorded) {
    if (!inScope(target)) continue;
    const row = rows.get(target);
    const times = mounted.get(target) ?? 0;
    const stillRight = row && row.source === own.source && facts.get(target)?.sameFile;
    if (times > 0 && !stillRight) plan.unmount.push({ target, times });
  }
  const unmounting = new Set(plan.unmount.map((u) => u.target));
  for (const [target, row] of rows) {
    if (!inScope(target)) continue;
    if (!insideFtpTree(homeRoot, target) || !SAFE_PATH.test(row.source) || posix.normalize(row.source) !== row.source) {
      plan.skipped.push({ target, why: 'outside an install\'s FTP tree (<home root>/<install>/ftp/<name>): never mounted by the engine' });
      continue;
    }
    const times = mounted.get(target) ?? 0;
    const own = recorded.get(target);
    if (times > 0 && !own) {
      plan.skipped.push({ target, why: 'something the engine did not mount is mounted there: left as it is' });
      continue;
    }
    if (times > 0 && !unmounting.has(target)) {
      plan.kept++;
      continue;
    }
    const f = facts.get(target);
    if (!f || f.sourceKind === '-' || f.sourceKind === 'l') {
      plan.skipped.push({ target, why: `its source ${row.source} ${f?.sourceKind === 'l' ? 'is a symlink' : 'does not exist'}` });
      continue;
    }
    if (f.targetKind !== f.sourceKind) {
      plan.skipped.push({ target, why: f.targetKind === '-' ? 'the target does not exist (the ftp step or an FTP reset makes it)' : `the target is a ${kindName(f.targetKind)}, its source a ${kindName(f.sourceKind)} (an FTP reset makes it right)` });
      continue;
    }
    plan.mount.push(row);
    plan.intent = [...plan.intent.filter((m) => m.target !== target), row];
  }
  // Recorded, not mounted, no row (or another source): nothing to undo, the record forgets it.
  plan.intent = plan.intent.filter((m) => {
    if (!inScope(m.target)) return true;
    const row = rows.get(m.target);
    return (mounted.get(m.target) ?? 0) > 0 || (row && row.source === m.source && plan.mount.includes(row));
  });
  return plan;
}

const kindName = (k: string) => (k === 'd' ? 'directory' : k === 'f' ? 'file' : k === 'l' ? 'symlink' : 'missing path');
