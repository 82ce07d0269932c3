import { posix } from 'node:path';
import { ftpDirOf } from './bind-mounts.plan.js';

/** Where ProFTPD's files live on a server: `<home root>/.ftp` (config, pid file, scoreboard, logs). */
export interface ProftpdLayout {
  dir: string;
}

export interface ProftpdInput {
  /** The server whose installs' accounts log in here (their master). */
  serverId: number;
  port: number;
  passivePorts: [number, number];
  /** One address to listen on; null: every address. */
  address: string | null;
  db: { host: string; port: number; database: string; user: string; password: string };
}

export const proftpdLayoutOf = (homeRoot: string): ProftpdLayout => ({ dir: ftpDirOf(homeRoot) });
export const proftpdConfPath = (l: ProftpdLayout): string => posix.join(l.dir, 'proftpd.conf');
export const proftpdPidPath = (l: ProftpdLayout): string => posix.join(l.dir, 'run/proftpd.pid');

const PLAIN = /^[A-Za-z0-9._\/-]+$/;
const word = (what: string, value: string): string => {
  if (!PLAIN.test(value)) throw new Error(`ProFTPD config: ${what} ${JSON.stringify(value)} has characters the config cannot carry`);
  return value;
};

/**
 * ProFTPD's whole config for one server (read with `-c`, so Debian's
 * modules.conf is not: every module is loaded here). Accounts come from
 * the catalog's `ftp_accounts` through mod_sql with a SELECT-only account:
 * enabled ones of installs whose master is this server, each jailed to its
 * row's homedir (the install's FTP tree), files made as the row's uid/gid
 * (uid/gid 0 mapped to nobody by `SQLMinID`), bcrypt passwords checked by
 * crypt(3) (`SQLAuthTypes Crypt`); system accounts never log in.
 */
export function renderProftpdConf(layout: ProftpdLayout, input: ProftpdInput): string {
  const dir = word('directory', layout.dir);
  const { db } = input;
  if (!Number.isInteger(input.serverId) || input.serverId < 1) throw new Error(`ProFTPD config: bad server id ${input.serverId}`);
  return [
    '# ProFTPD for the shops whose master is this server. Written by the provisioning engine',
    '# (task FtpConfig) from its catalog: do not edit, it is rewritten.',
    'ModulePath /usr/lib/proftpd',
    'LoadModule mod_sql.c',
    'LoadModule mod_sql_mysql.c',
    'ServerName "shops"',
    'ServerType standalone',
    'DefaultServer on',
    ...(input.address ? [`DefaultAddress ${word('address', input.address)}`, 'SocketBindTight on'] : []),
    `Port ${input.port}`,
    `PassivePorts ${input.passivePorts[0]} ${input.passivePorts[1]}`,
    'UseIPv6 off',
    'UseReverseDNS off',
    'User nobody',
    'Group nogroup',
    'Umask 022',
    'MaxInstances 64',
    `PidFile ${dir}/run/proftpd.pid`,
    `ScoreboardFile ${dir}/run/proftpd.scoreboard`,
    `DelayTable ${dir}/run/proftpd.delay`,
    'ControlsEngine off',
    'WtmpLog off',
    `SystemLog ${dir}/log/system.log`,
    `TransferLog ${dir}/log/xfer.log`,
    // Only the catalog's accounts: no PAM, no /etc/passwd logins, no root.
    'AuthPAM off',
    'AuthOrder mod_sql.c',
    'RootLogin off',
    'RequireValidShell off',
    'DefaultRoot ~',
    'AllowOverwrite on',
    'SQLBackend mysql',
    'SQLEngine on',
    `SQLConnectInfo ${word('database', db.database)}@${word('host', db.host)}:${db.port} ${word('user', db.user)} ${word('password', db.password)}`,
    'SQLAuthenticate users',
    'SQLAuthTypes Crypt',
    'SQLUserInfo ftp_accounts userid passwd uid gid homedir shell',
    `SQLUserWhereClause "enabled = 1 AND install_id IN (SELECT id FROM installs WHERE master_server_id = ${input.serverId})"`,
    'SQLMinID 1',
    '',
  ].join('\n');
}
