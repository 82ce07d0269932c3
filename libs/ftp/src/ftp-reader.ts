import { createHash, createHmac } from 'node:crypto';

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

/**
 * The catalog's SELECT-only account ProFTPD reads ftp_accounts with:
 * `ftp_<digest of the catalog database>` (one per catalog on a shared
 * MariaDB), its password derived from the current secrets key (nothing
 * stored; the same on every engine; a key rotation changes it, and the next
 * run sets it and rewrites the configs).
 */
export function ftpReader(database: string, key: Buffer): { user: string; password: string } {
  const user = `ftp_${createHash('sha256').update(database).digest('hex').slice(0, 16)}`;
  const password = createHmac('sha256', key).update(`shop-engine ftp reader\0${database}`).digest('base64url').slice(0, 32);
  return { user, password };
}

/**
 * Where the dispatchers' ProFTPD connects to the catalog from: a catalog on
 * the loopback is reached from 127.0.0.1 (every dispatcher on that machine);
 * else each dispatcher's private IP (its SSH address when it has none).
 */
export function readerHosts(catalogHost: string, servers: readonly { privateIp: string | null; sshHost: string | null }[]): string[] {
  if (catalogHost === 'localhost' || catalogHost.startsWith('127.')) return ['127.0.0.1'];
  const hosts = servers.map((s) => [s.privateIp, s.sshHost].find((ip) => ip && IPV4.test(ip))).filter((ip): ip is string => !!ip);
  return [...new Set(hosts)].sort();
}
