/**
 * A MySQL string literal: backslash and quote escaped, NUL and line breaks
 * as escapes (backslash escapes are on unless NO_BACKSLASH_ESCAPES, which the
 * engine never sets and manifests may not ask for).
 */
export function sqlStringLiteral(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/\0/g, '\\0').replace(/\n/g, '\\n').replace(/\r/g, '\\r').replace(/\x1a/g, '\\Z')}'`;
}
