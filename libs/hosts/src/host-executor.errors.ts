/** An argument vector as errors show it: long words (a script) abbreviated. */
export function describeCommand(argv: readonly string[]): string {
  return argv.map((word) => (word.length > 120 ? `<${word.length} bytes>` : word)).join(' ');
}

/** A command ran and failed: names the server, the command and what it printed. */
export class CommandFailedError extends Error {
  override name = 'CommandFailedError';
  constructor(
    readonly server: string,
    readonly argv: readonly string[],
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(`${server}: \`${describeCommand(argv)}\` exited ${exitCode ?? 'by a signal'}${stderr.trim() ? `: ${stderr.trim().slice(0, 2000)}` : ''}`);
  }
}

/** The server did not answer in time (down, unreachable, or the command hung). */
export class HostTimeoutError extends Error {
  override name = 'HostTimeoutError';
  constructor(
    readonly server: string,
    readonly argv: readonly string[],
    readonly timeoutMs: number,
  ) {
    super(`${server}: \`${describeCommand(argv)}\` did not finish within ${timeoutMs} ms`);
  }
}

/**
 * The caller's abort signal fired (a job that lost its lease): the command
 * was killed on the server, with what it started. `cause` is the signal's reason.
 */
export class CommandAbortedError extends Error {
  override name = 'CommandAbortedError';
  constructor(
    readonly server: string,
    readonly argv: readonly string[],
    readonly reason: unknown,
  ) {
    super(`${server}: \`${describeCommand(argv)}\` was aborted${reason instanceof Error ? `: ${reason.message}` : ''}`, { cause: reason });
  }
}

/** `mkdirNew` found something (a directory, a file, a link) already at the path: it never adopts it. */
export class PathExistsError extends Error {
  override name = 'PathExistsError';
  constructor(
    readonly server: string,
    readonly path: string,
  ) {
    super(`${server}: ${path} already exists`);
  }
}
