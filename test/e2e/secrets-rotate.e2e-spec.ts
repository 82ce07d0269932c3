import { createCipheriv, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DataSource } from 'typeorm';
import { AuditEvent, Install } from '@app/catalog';
import { SecretsKeyring, secretsKeyId } from '@app/config';
import { decryptSecret, encryptSecret, secretKeyIdOf } from '@app/installs';
import { createTestCatalog, openCatalog, type TestCatalog } from '../support/catalog.js';
import { cleanEnv, runCli } from '../support/processes-engine.js';

/** A secret as the engine stored it before key ids (v1): the rows a real catalog has today. */
function encryptV1(key: Buffer, plain: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
  return ['v1', ...[iv, cipher.getAuthTag(), body].map((p) => p.toString('base64url'))].join('.');
}

/**
 * Rotating SECRETS_KEY with the `secrets:rotate` snippet, as an operator
 * would: the built CLI on a MariaDB catalog holding secrets under the old key
 * (v1 rows from before key ids, and v2 rows).
 */
describe('secrets:rotate on a MariaDB catalog', () => {
  let catalog: TestCatalog;
  let ds: DataSource;
  let cwd: string;
  const oldKey = randomBytes(32);
  const newKey = randomBytes(32);
  const plain = new Map<number, { password: string; secrets: string | null }>();

  const env = (extra: Record<string, string>) => cleanEnv({ CATALOG_URL: catalog.url, LOG_LEVEL: 'warn', ...extra });
  const rows = () => ds.getRepository(Install).find({ order: { id: 'ASC' } });
  const snapshot = async () => (await rows()).map((r) => [r.dbPasswordEnc, r.secretsEnc]);
  const noKeyIn = (text: string) => {
    for (const key of [oldKey, newKey]) for (const encoding of ['hex', 'base64', 'base64url'] as const) expect(text).not.toContain(key.toString(encoding));
  };

  beforeAll(async () => {
    catalog = await createTestCatalog('mariadb', 'secrets_rotate');
    ds = await openCatalog(catalog);
    cwd = mkdtempSync(join(tmpdir(), 'secrets-rotate-'));
    for (let i = 1; i <= 7; i++) {
      const password = `password-${i}-${randomBytes(6).toString('hex')}`;
      const secrets = i % 2 === 0 ? JSON.stringify({ cookie_key: `cookie-${i}`, ftp_password: `ftp-${i}` }) : null;
      // 1-3: v1 rows under the old key; 4-6: v2 under the old key; 7: already under the new key.
      const enc = (text: string) => (i <= 3 ? encryptV1(oldKey, text) : encryptSecret(i <= 6 ? oldKey : newKey, text));
      const saved = await ds.getRepository(Install).save({
        orderRef: `rotate-${i}`, customerEmail: `c${i}@example.com`, license: 'free', fsName: `rotate${i}`, dbName: `rotate${i}`, dbUser: `rotate${i}`,
        dbPasswordEnc: enc(password), secretsEnc: secrets === null ? null : enc(secrets), status: 'live',
      });
      plain.set(saved.id, { password, secrets });
    }
  });
  afterAll(async () => {
    await ds?.destroy();
    await catalog?.drop();
    if (cwd) rmSync(cwd, { recursive: true, force: true });
  });

  it('without the old key: fails naming the missing key id, never a key, and changes nothing', async () => {
    const before = await snapshot();
    const run = await runCli(['secrets:rotate', '--dry-run'], cwd, env({ SECRETS_KEY: newKey.toString('hex') }));
    expect(run.code).toBe(1);
    expect(run.stdout).toContain(`key of id ${secretsKeyId(oldKey)}, which the engine does not have`);
    expect(run.stdout).toContain('installs.db_password_enc: 0 to re-encrypt, 1 already current, 0 rewritten meanwhile, 6 failed');
    expect(run.stdout).toContain('installs.secrets_enc: 0 to re-encrypt, 0 already current, 0 rewritten meanwhile, 3 failed');
    expect(run.stdout).toContain('a v1 secret (no key id) that no configured key decrypts');
    expect(run.stderr).toContain('could not be decrypted with the configured keys');
    noKeyIn(run.stdout + run.stderr);
    expect(await snapshot()).toEqual(before);
  });

  it('a dry run with SECRETS_KEY_PREVIOUS counts what it would do and writes nothing', async () => {
    const before = await snapshot();
    const run = await runCli(['secrets:rotate', '--dry-run'], cwd, env({ SECRETS_KEY: newKey.toString('hex'), SECRETS_KEY_PREVIOUS: `${randomBytes(32).toString('hex')},${oldKey.toString('base64')}` }));
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(run.stdout).toContain('installs.db_password_enc: 6 to re-encrypt, 1 already current');
    expect(run.stdout).toContain('installs.secrets_enc: 3 to re-encrypt, 0 already current');
    expect(run.stdout).toContain(`(found: v1 ×3, ${secretsKeyId(oldKey)} ×3, ${secretsKeyId(newKey)} ×1)`);
    noKeyIn(run.stdout);
    expect(await snapshot()).toEqual(before);
  });

  it('re-encrypts every secret with the current key in batches; a second run finds nothing to do; then the old key can go', async () => {
    const rotating = env({ SECRETS_KEY: newKey.toString('hex'), SECRETS_KEY_PREVIOUS: oldKey.toString('hex') });
    const run = await runCli(['secrets:rotate', '--batch-size', '2'], cwd, rotating);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(run.stdout).toContain('installs.db_password_enc: 6 re-encrypted, 1 already current, 0 rewritten meanwhile, 0 failed');
    expect(run.stdout).toContain('installs.secrets_enc: 3 re-encrypted, 0 already current');
    expect(run.stdout).toContain(`every stored secret is under key ${secretsKeyId(newKey)}: SECRETS_KEY_PREVIOUS can be removed`);
    expect(run.stdout.match(/^installs: up to id \d+/gm)).toHaveLength(4);
    noKeyIn(run.stdout);

    const only = new SecretsKeyring(newKey);
    for (const row of await rows()) {
      expect(secretKeyIdOf(row.dbPasswordEnc)).toBe(secretsKeyId(newKey));
      expect(decryptSecret(only, row.dbPasswordEnc)).toBe(plain.get(row.id)!.password);
      expect(row.secretsEnc === null ? null : decryptSecret(only, row.secretsEnc)).toBe(plain.get(row.id)!.secrets);
    }
    const audit = await ds.getRepository(AuditEvent).findOneByOrFail({ action: 'secrets.rotate' });
    expect(audit).toMatchObject({ via: 'cli', details: { keyId: secretsKeyId(newKey), rotated: 9, failed: 0 } });

    const before = await snapshot();
    const again = await runCli(['secrets:rotate'], cwd, rotating);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('installs.db_password_enc: 0 re-encrypted, 7 already current');
    expect(await snapshot()).toEqual(before);

    const dropped = await runCli(['secrets:rotate', '--dry-run'], cwd, env({ SECRETS_KEY: newKey.toString('hex') }));
    expect(dropped.code).toBe(0);
    expect(dropped.stdout).toContain('0 secret(s) would be re-encrypted');
  });

  it('refuses a bad --batch-size', async () => {
    const run = await runCli(['secrets:rotate', '--batch-size', '0'], cwd, env({ SECRETS_KEY: newKey.toString('hex') }));
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('--batch-size is a number');
  });
});
