import { createHash, createHmac } from 'node:crypto';

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
