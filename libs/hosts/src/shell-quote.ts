/**
 * The one place an argument vector becomes a shell command line (for the
 * remote shell of an SSH exec, which only takes a string). Every argument is
 * quoted for POSIX sh: words of plainly safe characters stay as they are;
 * anything else is single-quoted, with embedded single quotes closed, escaped
 * and reopened. Single quotes make every other character literal, including
 * `$`, backticks, `;`, `|`, `&`, newlines and globs.
 */
const SAFE_WORD = /^[A-Za-z0-9_@%+=:,./-]+$/;

export class UnquotableArgumentError extends Error {
  override name = 'UnquotableArgumentError';
}

export function quoteArg(arg: string): string {
  // A NUL byte cannot be passed to a program at all: refuse rather than truncate.
  if (arg.includes('\0')) throw new UnquotableArgumentError('an argument contains a NUL byte');
  if (arg !== '' && SAFE_WORD.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** `argv` as one sh command line whose words are exactly `argv`. */
export function commandLine(argv: readonly string[]): string {
  if (argv.length === 0) throw new UnquotableArgumentError('an empty command');
  return argv.map(quoteArg).join(' ');
}
