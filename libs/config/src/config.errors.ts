/** A configuration that cannot boot; the message lists every bad key. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly { key: string; problem: string }[]) {
    super(
      'Invalid configuration (fix these environment variables and start again):\n' +
        problems.map((p) => `  - ${p.key}: ${p.problem}`).join('\n'),
    );
    this.name = 'ConfigError';
  }
}
