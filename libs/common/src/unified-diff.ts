/**
 * A unified diff (`diff -u` format) of two texts, line by line, for plans
 * shown to people (a vhost before and after). Empty when they are equal.
 * LCS over the lines: fine for files of a few thousand lines.
 */
export function unifiedDiff(before: string, after: string, options: { fromFile?: string; toFile?: string; context?: number } = {}): string {
  if (before === after) return '';
  const a = splitLines(before);
  const b = splitLines(after);
  const context = options.context ?? 3;
  const ops = lineOps(a, b);
  const hunks: string[] = [];
  let i = 0;
  while (i < ops.length) {
    if (ops[i]!.kind === ' ') {
      i++;
      continue;
    }
    // A hunk: from `context` lines before this change to `context` after the last change closer than 2*context.
    let start = Math.max(0, i - context);
    let end = i;
    for (let j = i; j < ops.length; j++) {
      if (ops[j]!.kind !== ' ') end = j;
      else if (j - end > 2 * context) break;
    }
    const stop = Math.min(ops.length, end + context + 1);
    const slice = ops.slice(start, stop);
    const first = ops[start]!;
    const aCount = slice.filter((o) => o.kind !== '+').length;
    const bCount = slice.filter((o) => o.kind !== '-').length;
    const aStart = aCount === 0 ? first.aLine : first.aLine + 1;
    const bStart = bCount === 0 ? first.bLine : first.bLine + 1;
    hunks.push(`@@ -${aStart},${aCount} +${bStart},${bCount} @@`);
    for (const op of slice) hunks.push(`${op.kind}${op.text}`);
    i = stop;
    start = stop;
  }
  return [`--- ${options.fromFile ?? 'before'}`, `+++ ${options.toFile ?? 'after'}`, ...hunks].join('\n') + '\n';
}

interface LineOp {
  kind: ' ' | '-' | '+';
  text: string;
  /** Lines of `a` and `b` before this one (0-based position where it sits). */
  aLine: number;
  bLine: number;
}

function splitLines(text: string): string[] {
  if (text === '') return [];
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

function lineOps(a: string[], b: string[]): LineOp[] {
  // Common head and tail first: a vhost changed in a few lines stays cheap.
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++;
  const am = a.slice(head, a.length - tail);
  const bm = b.slice(head, b.length - tail);
  const n = am.length;
  const m = bm.length;
  // lcs[i][j]: the LCS length of am[i..] and bm[j..].
  const lcs: Uint32Array[] = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) lcs[i]![j] = am[i] === bm[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
  const ops: LineOp[] = [];
  let ai = 0;
  let bi = 0;
  const push = (kind: LineOp['kind'], text: string) => {
    ops.push({ kind, text, aLine: ai, bLine: bi });
    if (kind !== '+') ai++;
    if (kind !== '-') bi++;
  };
  for (let k = 0; k < head; k++) push(' ', a[k]!);
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && am[i] === bm[j]) {
      push(' ', am[i]!);
      i++;
      j++;
    } else if (i < n && (j === m || lcs[i + 1]![j]! >= lcs[i]![j + 1]!)) {
      // Deletions before insertions, as diff -u shows a changed line.
      push('-', am[i]!);
      i++;
    } else {
      push('+', bm[j]!);
      j++;
    }
  }
  for (let k = a.length - tail; k < a.length; k++) push(' ', a[k]!);
  return ops;
}
