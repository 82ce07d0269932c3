/** How snippets talk to the operator: plain lines on stdout, problems on stderr. */
export const out = (line = '') => process.stdout.write(line + '\n');
export const err = (line: string) => process.stderr.write(line + '\n');

/** A failure the operator can act on: printed without a stack, exit code 1. */
export class SnippetError extends Error {
  override name = 'SnippetError';
}

/** Renders rows as an aligned text table. */
export function table(headers: string[], rows: (string | number | null)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map((c) => (c === null ? '-' : String(c))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  return cells.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}
