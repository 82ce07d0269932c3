import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from './config.errors.js';
import { loadConfig } from './load-config.js';

const KEY = 'ab'.repeat(32);
const tmp = () => mkdtempSync(join(tmpdir(), 'ops-email-'));

describe('loadConfig: OPS_EMAIL', () => {
  it('is null when unset, and the address when given', () => {
    expect(loadConfig({ CATALOG_URL: 'mysql://u:p@h/db', SECRETS_KEY: KEY }, { cwd: tmp() }).opsEmail).toBeNull();
    expect(loadConfig({ CATALOG_URL: 'mysql://u:p@h/db', SECRETS_KEY: KEY, OPS_EMAIL: ' ops@example.net ' }, { cwd: tmp() }).opsEmail).toBe('ops@example.net');
  });

  it.each(['ops', 'ops@', 'a@b@c.net', 'ops@example.net, boss@example.net', 'Ops <ops@example.net>', 'ops@-bad.net'])('refuses %j, naming the key', (value) => {
    let error: unknown;
    try {
      loadConfig({ CATALOG_URL: 'mysql://u:p@h/db', SECRETS_KEY: KEY, OPS_EMAIL: value }, { cwd: tmp() });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems.map((p) => p.key)).toEqual(['OPS_EMAIL']);
  });
});
