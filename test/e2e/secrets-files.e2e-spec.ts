import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { loadConfig } from '@app/config';
import { MailService } from '@app/mail';
import { startEngine } from '../../apps/engine/src/start-engine.js';

const mode = (path: string) => (statSync(path).mode & 0o777).toString(8);

/**
 * Files that hold secrets are readable by the engine's user only: the
 * embedded SQLite catalog (and its -wal and -shm), `secrets.key`, and the
 * .eml files the mail service writes (a welcome mail carries the FTP
 * password), in a 0700 mail directory. Checked with the umask a shell
 * usually has (022), after a real embedded start and a real mail write.
 */
describe('file modes of secrets at rest', () => {
  let base: string;
  const previousUmask = process.umask(0o022);

  beforeAll(() => {
    base = mkdtempSync(join(tmpdir(), 'secrets-files-'));
  });
  afterAll(() => {
    process.umask(previousUmask);
    rmSync(base, { recursive: true, force: true });
  });

  const embeddedStart = async (varDir: string) => {
    const config = loadConfig({ CATALOG_URL: `sqlite:${join(varDir, 'engine.sqlite')}`, VAR_DIR: varDir, PORT: '0', HOST: '127.0.133.1', LOG_LEVEL: 'silent', ENGINE_ROLES: 'api' });
    const engine = await startEngine(config);
    return { config, engine };
  };

  it('an embedded start on a fresh VAR_DIR: the catalog, its -wal and -shm, and the generated key are 0600', async () => {
    const varDir = join(base, 'fresh');
    const { engine } = await embeddedStart(varDir);
    try {
      // The catalog is open in WAL mode, with writes behind it (the local server, the admin token).
      const catalog = join(varDir, 'engine.sqlite');
      expect(existsSync(`${catalog}-wal`) && existsSync(`${catalog}-shm`)).toBe(true);
      expect({ catalog: mode(catalog), wal: mode(`${catalog}-wal`), shm: mode(`${catalog}-shm`), key: mode(join(varDir, 'secrets.key')) }).toEqual({
        catalog: '600',
        wal: '600',
        shm: '600',
        key: '600',
      });
    } finally {
      await engine.close();
    }
  });

  it('a VAR_DIR left by an earlier version with readable files: the key and the catalog are made 0600 at start', async () => {
    const varDir = join(base, 'existing');
    mkdirSync(varDir, { mode: 0o755 });
    writeFileSync(join(varDir, 'secrets.key'), `${'5a'.repeat(32)}\n`);
    chmodSync(join(varDir, 'secrets.key'), 0o644);
    const catalog = join(varDir, 'engine.sqlite');
    const db = new Database(catalog);
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE leftover (id INTEGER)');
    db.close();
    chmodSync(catalog, 0o644);
    expect(mode(catalog)).toBe('644');

    const { config, engine } = await embeddedStart(varDir);
    try {
      expect(config.secretsKeySource).toBe('file');
      expect(config.secretsKey.current.toString('hex')).toBe('5a'.repeat(32));
      expect({ catalog: mode(catalog), wal: mode(`${catalog}-wal`), shm: mode(`${catalog}-shm`), key: mode(join(varDir, 'secrets.key')) }).toEqual({
        catalog: '600',
        wal: '600',
        shm: '600',
        key: '600',
      });
    } finally {
      await engine.close();
    }
  });

  it('mail written as .eml files: the directory 0700, each file 0600, also over a looser directory and file of an earlier version', async () => {
    const varDir = join(base, 'mail-var');
    const config = loadConfig({ CATALOG_URL: 'sqlite::memory:', VAR_DIR: varDir, SECRETS_KEY: '0f'.repeat(32), LOG_LEVEL: 'silent' });
    const mail = new MailService(config);
    try {
      await mail.send({ to: 'shop@example.com', subject: 'Your shop', text: 'FTP password: Xy7-secret', messageId: '<install-1-welcome@engine>' });
      const files = readdirSync(config.mailDir);
      expect(files).toEqual(['_install-1-welcome@engine_.eml']);
      const eml = join(config.mailDir, files[0]!);
      expect(readFileSync(eml, 'utf8')).toContain('FTP password: Xy7-secret');
      expect({ dir: mode(config.mailDir), eml: mode(eml) }).toEqual({ dir: '700', eml: '600' });

      // An earlier version's mail directory and file, readable by everyone; the same mail sent again.
      chmodSync(config.mailDir, 0o755);
      chmodSync(eml, 0o644);
      await mail.send({ to: 'shop@example.com', subject: 'Your shop', text: 'FTP password: Xy7-secret', messageId: '<install-1-welcome@engine>' });
      expect(readdirSync(config.mailDir)).toEqual(['_install-1-welcome@engine_.eml']);
      expect({ dir: mode(config.mailDir), eml: mode(eml) }).toEqual({ dir: '700', eml: '600' });
    } finally {
      mail.onModuleDestroy();
    }
  });
});
