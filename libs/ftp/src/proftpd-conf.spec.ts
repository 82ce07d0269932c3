import { ftpReader, readerHosts } from './ftp-reader.js';
import { proftpdLayoutOf, renderProftpdConf } from './proftpd-conf.js';

const input = { serverId: 7, port: 21, passivePorts: [49152, 49407] as [number, number], address: null, db: { host: 'db.internal', port: 3306, database: 'catalog', user: 'ftp_abc', password: 'pw-_x' } };

describe('ProFTPD config', () => {
  it('authenticates from ftp_accounts (enabled, this master\'s installs), jails, and keeps system accounts out', () => {
    const conf = renderProftpdConf(proftpdLayoutOf('/srv/home/'), input);
    expect(conf).toContain('SQLConnectInfo catalog@db.internal:3306 ftp_abc pw-_x');
    expect(conf).toContain('SQLUserInfo ftp_accounts userid passwd uid gid homedir shell');
    expect(conf).toContain('SQLUserWhereClause "enabled = 1 AND install_id IN (SELECT id FROM installs WHERE master_server_id = 7)"');
    expect(conf).toContain('SQLAuthTypes Crypt');
    for (const line of ['DefaultRoot ~', 'AuthOrder mod_sql.c', 'AuthPAM off', 'RootLogin off', 'SQLMinID 1', 'PidFile /srv/home/.ftp/run/proftpd.pid', 'PassivePorts 49152 49407']) expect(conf.split('\n')).toContain(line);
    expect(conf).not.toContain('DefaultAddress');
    expect(renderProftpdConf(proftpdLayoutOf('/srv/home'), { ...input, address: '10.0.0.5' })).toContain('DefaultAddress 10.0.0.5\nSocketBindTight on');
  });

  it('refuses a value that could break a line or quote', () => {
    expect(() => renderProftpdConf(proftpdLayoutOf('/srv/my home'), input)).toThrow(/directory/);
    expect(() => renderProftpdConf(proftpdLayoutOf('/srv/home'), { ...input, db: { ...input.db, password: 'a b\nSQLEngine off' } })).toThrow(/password/);
  });

  it('derives the reader per catalog database from the key; its hosts follow where the catalog is', () => {
    const key = Buffer.alloc(32, 1);
    expect(ftpReader('catalog', key)).toEqual(ftpReader('catalog', key));
    expect(ftpReader('catalog', key).user).toMatch(/^ftp_[0-9a-f]{16}$/);
    expect(ftpReader('other', key).user).not.toBe(ftpReader('catalog', key).user);
    expect(ftpReader('catalog', Buffer.alloc(32, 2)).password).not.toBe(ftpReader('catalog', key).password);
    expect(readerHosts('127.0.0.1', [{ privateIp: '10.0.0.2', sshHost: null }])).toEqual(['127.0.0.1']);
    expect(readerHosts('db.internal', [{ privateIp: '10.0.0.3', sshHost: null }, { privateIp: null, sshHost: '10.0.1.4' }, { privateIp: '10.0.0.3', sshHost: null }])).toEqual(['10.0.0.3', '10.0.1.4']);
  });
});
