/** A command ran and failed: names the server, the command and what it printed. */
export class CommandFailedError extends Error {
  override name = 'CommandFailedError';
  constructor(
    readonly server: string,
    readonly argv: readonly string[],
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(`${server}: \`${argv.join(' ')}\` exited ${exitCode ?? 'by a signal'}${stderr.trim() ? `: ${stderr.trim().slice(0, 2000)}` : ''}`);
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
    super(`${server}: \`${argv.join(' ')}\` did not finish within ${timeoutMs} ms`);
  }
}
