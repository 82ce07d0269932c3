import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readTestbed } from './testbed.js';

/**
 * Writes the MySQL option file a database server of the inventory points
 * to (`dbOptionsFile`): the admin connection to the testbed's MariaDB.
 */
export function writeDbOptionsFile(dir: string): string {
  const { mariadb } = readTestbed();
  const path = join(dir, 'engine-admin.cnf');
  writeFileSync(
    path,
    ['[client]', `host=${mariadb.host}`, `port=${mariadb.port}`, `user=${mariadb.adminUser}`, `password=${mariadb.adminPassword}`, ''].join('\n'),
    { mode: 0o600 },
  );
  return path;
}
