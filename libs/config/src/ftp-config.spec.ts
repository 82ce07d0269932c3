import { ConfigError } from './config.errors.js';
import { loadConfig } from './load-config.js';

const KEY = 'a'.repeat(64);

describe('FTP configuration', () => {
  it('defaults to port 21, a 256-port passive range on every address, the catalog as the engine reaches it', () => {
    const config = loadConfig({ CATALOG_URL: 'mysql://u:p@db.internal:3307/catalog', SECRETS_KEY: KEY });
    expect(config.ftp).toEqual({ enabled: true, port: 21, passivePorts: [49152, 49407], address: null, catalogHost: { host: 'db.internal', port: 3307 } });
  });

  it('takes FTP_PORT, FTP_PASSIVE_PORTS, FTP_ADDRESS and FTP_CATALOG_HOST', () => {
    const config = loadConfig({ CATALOG_URL: 'mysql://u:p@127.0.0.1/catalog', SECRETS_KEY: KEY, FTP_PORT: '2121', FTP_PASSIVE_PORTS: '30000-30049', FTP_ADDRESS: '10.0.0.5', FTP_CATALOG_HOST: '10.0.0.1' });
    expect(config.ftp).toEqual({ enabled: true, port: 2121, passivePorts: [30000, 30049], address: '10.0.0.5', catalogHost: { host: '10.0.0.1', port: 3306 } });
  });

  it('is off with a SQLite catalog (the embedded default) and can be turned off', () => {
    expect(loadConfig({ CATALOG_URL: 'sqlite:/tmp/ftp-config-spec.sqlite', SECRETS_KEY: KEY }).ftp.enabled).toBe(false);
    expect(loadConfig({ CATALOG_URL: 'mysql://u:p@h/catalog', SECRETS_KEY: KEY, FTP_ENABLED: 'false' }).ftp.enabled).toBe(false);
    expect(() => loadConfig({ CATALOG_URL: 'sqlite:/tmp/ftp-config-spec.sqlite', SECRETS_KEY: KEY, FTP_ENABLED: 'true' })).toThrow(/FTP_ENABLED/);
  });

  it('names every bad FTP key', () => {
    let error: unknown;
    try {
      loadConfig({ CATALOG_URL: 'mysql://u:p@h/catalog', SECRETS_KEY: KEY, FTP_PORT: '0', FTP_PASSIVE_PORTS: '30000-30000', FTP_ADDRESS: 'every', FTP_CATALOG_HOST: 'a b' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    for (const key of ['FTP_PORT', 'FTP_PASSIVE_PORTS', 'FTP_ADDRESS', 'FTP_CATALOG_HOST']) expect(String((error as Error).message)).toContain(key);
  });
});
