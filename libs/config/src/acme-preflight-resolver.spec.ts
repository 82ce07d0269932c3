import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from './config.errors.js';
import { loadConfig } from './load-config.js';

const KEY = 'ab'.repeat(32);
const tmp = () => mkdtempSync(join(tmpdir(), 'config-'));
const base = { CATALOG_URL: 'mysql://u:p@h/db', SECRETS_KEY: KEY, ACME_DIRECTORY_URL: 'https://127.0.0.1:14000/dir', ACME_EMAIL: 'ops@example.net' };
const problems = (env: Record<string, string>) => {
  try {
    loadConfig(env, { cwd: tmp() });
    return [];
  } catch (error) {
    return (error as ConfigError).problems.map((p) => p.key);
  }
};

describe('loadConfig: ACME_PREFLIGHT_RESOLVER', () => {
  it('is null by default (the system resolver) and takes ip:port', () => {
    expect(loadConfig(base, { cwd: tmp() }).acme).toMatchObject({ preflightResolver: null, renewDays: 21 });
    expect(loadConfig({ ...base, ACME_PREFLIGHT_RESOLVER: ' 127.0.0.1:18053 ' }, { cwd: tmp() }).acme?.preflightResolver).toBe('127.0.0.1:18053');
  });

  it('refuses anything else, and a resolver without an ACME CA', () => {
    for (const value of ['127.0.0.1', 'localhost:53', '127.0.0.1:0', '127.0.0.1:70000', '256.0.0.1:53', '127.0.0.1:53; rm', '[::1]:53']) {
      expect({ value, keys: problems({ ...base, ACME_PREFLIGHT_RESOLVER: value }) }).toEqual({ value, keys: ['ACME_PREFLIGHT_RESOLVER'] });
    }
    expect(problems({ CATALOG_URL: 'mysql://u:p@h/db', SECRETS_KEY: KEY, ACME_PREFLIGHT_RESOLVER: '127.0.0.1:53' })).toEqual(['ACME_DIRECTORY_URL']);
  });
});
