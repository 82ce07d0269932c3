import { chmodSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { ConfigError } from './config.errors.js';
import { loadConfig } from './load-config.js';
import { secretsKeyId } from './secrets-keyring.js';

const KEY = 'a'.repeat(64);
const tmp = () => mkdtempSync(join(tmpdir(), 'config-spec-'));

describe('loadConfig', () => {
  it('keeps the default catalog in VAR_DIR, with the key and the roots', () => {
    const cwd = tmp();
    const config = loadConfig({ VAR_DIR: 'state' }, { cwd });
    expect(config.catalog).toEqual({ kind: 'sqlite', path: join(cwd, 'state/engine.sqlite') });
    expect(config.varDir).toBe(join(cwd, 'state'));
  });

  it('gives the embedded default with nothing set, generating the secrets key once', () => {
    const cwd = tmp();
    const config = loadConfig({}, { cwd });
    expect(config.catalog).toEqual({ kind: 'sqlite', path: join(cwd, 'var/engine.sqlite') });
    expect(config).toMatchObject({
      port: 3000,
      host: '127.0.0.1',
      roles: ['api', 'worker', 'cron'],
      embedded: true,
      migrationsRun: true,
      smtpUrl: null,
      mailDir: join(cwd, 'var/mail'),
      logLevel: 'info',
      secretsKeySource: 'generated',
    });
    const keyFile = join(cwd, 'var/secrets.key');
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(keyFile, 'utf8').trim()).toBe(config.secretsKey.current.toString('hex'));

    const again = loadConfig({}, { cwd });
    expect(again.secretsKeySource).toBe('file');
    expect(again.secretsKey.current.equals(config.secretsKey.current)).toBe(true);
  });

  it('parses a MySQL catalog URL with an encoded password', () => {
    const config = loadConfig(
      { CATALOG_URL: 'mysql://engine:p%40ss%3Aw@db.internal:3307/catalog', SECRETS_KEY: KEY },
      { cwd: tmp() },
    );
    expect(config.catalog).toEqual({
      kind: 'mysql',
      host: 'db.internal',
      port: 3307,
      user: 'engine',
      password: 'p@ss:w',
      database: 'catalog',
      poolSize: 20,
    });
    expect(config.embedded).toBe(false);
  });

  it('takes roles in any order and case, keeps the canonical order', () => {
    const config = loadConfig({ ENGINE_ROLES: ' CRON , api ' }, { cwd: tmp() });
    expect(config.roles).toEqual(['api', 'cron']);
  });

  it('accepts a base64 secrets key', () => {
    const config = loadConfig({ SECRETS_KEY: Buffer.alloc(32, 7).toString('base64') }, { cwd: tmp() });
    expect(config.secretsKey.current.equals(Buffer.alloc(32, 7))).toBe(true);
    expect(config.secretsKeySource).toBe('env');
  });

  it('reports every bad key at once and stops', () => {
    let error: unknown;
    try {
      loadConfig(
        {
          CATALOG_URL: 'postgres://x@y/z',
          PORT: 'eighty',
          ENGINE_ROLES: 'api,janitor',
          LOG_LEVEL: 'loud',
          SMTP_URL: 'http://mail',
          MIGRATIONS_RUN: 'maybe',
          SECRETS_KEY: 'short',
          SSH_KEY_PATH: '/nonexistent/key',
        },
        { cwd: tmp() },
      );
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const keys = (error as ConfigError).problems.map((p) => p.key).sort();
    expect(keys).toEqual(
      ['CATALOG_URL', 'ENGINE_ROLES', 'LOG_LEVEL', 'MIGRATIONS_RUN', 'PORT', 'SECRETS_KEY', 'SMTP_URL', 'SSH_KEY_PATH'].sort(),
    );
    expect((error as ConfigError).message).toContain('PORT: must be an integer');
    expect((error as ConfigError).message).toContain('janitor');
  });

  it('requires SECRETS_KEY with a MySQL catalog (instances must share it)', () => {
    expect(() => loadConfig({ CATALOG_URL: 'mysql://u:p@h/db' }, { cwd: tmp() })).toThrow(
      /SECRETS_KEY: is required with a MySQL catalog/,
    );
  });

  it('refuses a MySQL URL without a database and an empty role list', () => {
    expect(() => loadConfig({ CATALOG_URL: 'mysql://u:p@h/', ENGINE_ROLES: ',', SECRETS_KEY: KEY })).toThrow(
      /CATALOG_URL[\s\S]*ENGINE_ROLES: needs at least one/,
    );
  });

  it('takes the previous keys of a rotation, for decryption only, and never shows a key', () => {
    const previous = [Buffer.alloc(32, 1), Buffer.alloc(32, 2)];
    const config = loadConfig(
      { SECRETS_KEY: KEY, SECRETS_KEY_PREVIOUS: ` ${previous[0]!.toString('hex')}, ${previous[1]!.toString('base64')} ` },
      { cwd: tmp() },
    );
    expect(config.secretsKey.current.toString('hex')).toBe(KEY);
    expect(config.secretsKey.previousIds).toEqual(previous.map(secretsKeyId));
    expect(config.secretsKey.key(secretsKeyId(previous[1]!))?.equals(previous[1]!)).toBe(true);
    const shown = `${JSON.stringify(config)} ${inspect(config)}`;
    for (const key of [Buffer.from(KEY, 'hex'), ...previous]) {
      expect(shown).not.toContain(key.toString('hex'));
      expect(shown).not.toContain(key.toString('base64'));
    }
  });

  it('names a bad previous key by its position, never by its value', () => {
    const bad = 'b'.repeat(63);
    expect(() => loadConfig({ SECRETS_KEY: KEY, SECRETS_KEY_PREVIOUS: `${'c'.repeat(64)},${bad}` }, { cwd: tmp() })).toThrow(
      /SECRETS_KEY_PREVIOUS: entry 2 is not a 32-byte key/,
    );
    try {
      loadConfig({ SECRETS_KEY: KEY, SECRETS_KEY_PREVIOUS: bad }, { cwd: tmp() });
    } catch (error) {
      expect((error as Error).message).not.toContain(bad);
    }
  });

  it('makes a secrets key file found in an existing VAR_DIR readable by its owner only', () => {
    const cwd = tmp();
    mkdirSync(join(cwd, 'state'), { mode: 0o755 });
    const keyFile = join(cwd, 'state/secrets.key');
    writeFileSync(keyFile, `${KEY}\n`);
    chmodSync(keyFile, 0o644);
    const config = loadConfig({ VAR_DIR: 'state' }, { cwd });
    expect(config.secretsKeySource).toBe('file');
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
  });

  it('refuses a secrets key file that was tampered with', () => {
    const cwd = tmp();
    loadConfig({}, { cwd });
    writeFileSync(join(cwd, 'var/secrets.key'), 'not a key\n');
    expect(() => loadConfig({}, { cwd })).toThrow(/secrets.key exists but does not hold/);
  });
});

describe('loadConfig side effects', () => {
  it('generates no key when another key is wrong', () => {
    const cwd = tmp();
    expect(() => loadConfig({ PORT: 'x' }, { cwd })).toThrow(ConfigError);
    expect(() => statSync(join(cwd, 'var/secrets.key'))).toThrow();
  });
});

describe('loadConfig: local transport and order limits', () => {
  it('defaults to no local servers outside the embedded default, 60 orders a minute, 3 free and 20 paid sites', () => {
    const config = loadConfig({ CATALOG_URL: 'mysql://u:p@h/db', SECRETS_KEY: KEY }, { cwd: tmp() });
    expect(config.allowLocalTransport).toBe(false);
    expect(config.orders).toEqual({ perMinutePerToken: 60, maxSites: { free: 3, paid: 20 } });
  });

  it('takes the settings, 0 turning the rate limit off', () => {
    const config = loadConfig(
      { ALLOW_LOCAL_TRANSPORT: 'yes', ORDERS_PER_MINUTE: '0', MAX_SITES_FREE: '1', MAX_SITES_PAID: '5' },
      { cwd: tmp() },
    );
    expect(config.allowLocalTransport).toBe(true);
    expect(config.orders).toEqual({ perMinutePerToken: 0, maxSites: { free: 1, paid: 5 } });
  });

  it('stops the boot naming each bad key', () => {
    let error: unknown;
    try {
      loadConfig({ ALLOW_LOCAL_TRANSPORT: 'sometimes', ORDERS_PER_MINUTE: '-1', MAX_SITES_FREE: '0', MAX_SITES_PAID: '21' }, { cwd: tmp() });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems.map((p) => p.key).sort()).toEqual(['ALLOW_LOCAL_TRANSPORT', 'MAX_SITES_FREE', 'MAX_SITES_PAID', 'ORDERS_PER_MINUTE']);
    expect((error as ConfigError).message).toContain('MAX_SITES_PAID: must be an integer from 1 to 20 (got "21")');
  });
});

describe('loadConfig: search', () => {
  it("defaults searchd's SphinxQL port to 9306 and refuses one that is no port", () => {
    expect(loadConfig({}, { cwd: tmp() }).searchPort).toBe(9306);
    expect(loadConfig({ SEARCH_PORT: '19306' }, { cwd: tmp() }).searchPort).toBe(19306);
    expect(() => loadConfig({ SEARCH_PORT: '70000' }, { cwd: tmp() })).toThrow(/SEARCH_PORT: must be an integer from 1 to 65535/);
  });
});

describe('loadConfig: queue wake-ups', () => {
  it('takes wake-ups on 127.0.0.1 by default, on the address given, on none with "off", and refuses what is no IP address', () => {
    expect(loadConfig({}, { cwd: tmp() }).worker.wakeAddress).toBe('127.0.0.1');
    expect(loadConfig({ WORKER_WAKE_ADDRESS: '10.0.0.5' }, { cwd: tmp() }).worker.wakeAddress).toBe('10.0.0.5');
    expect(loadConfig({ WORKER_WAKE_ADDRESS: '::1' }, { cwd: tmp() }).worker.wakeAddress).toBe('::1');
    expect(loadConfig({ WORKER_WAKE_ADDRESS: 'off' }, { cwd: tmp() }).worker.wakeAddress).toBeNull();
    for (const bad of ['localhost', '10.0.0.5:9', '0.0.0.0; rm', '0.0.0.0', '::']) {
      expect(() => loadConfig({ WORKER_WAKE_ADDRESS: bad }, { cwd: tmp() })).toThrow(/WORKER_WAKE_ADDRESS: must be an IP address of this machine \(not a wildcard\) or "off"/);
    }
  });
});
