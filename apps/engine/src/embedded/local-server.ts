import { join } from 'node:path';
import type { NewServer } from '@app/catalog';
import { SQLITE_TENANT_DATABASES } from '@app/databases';

export const LOCAL_SERVER_HOSTNAME = 'localhost';
/** Where the local server's PHP listens (port 9000): a loopback address of its own, clear of a php-fpm the machine may run on 127.0.0.1. */
export const LOCAL_SERVER_PRIVATE_IP = '127.0.9.1';

/** The local server's tenant databases: SQLite files under `<var>/tenant-databases` (this machine has no MySQL for them). */
export const localTenantDatabases = (varDir: string): string => `${SQLITE_TENANT_DATABASES}${join(varDir, 'tenant-databases')}`;

/**
 * The one server of the embedded default: this machine, reached by the local
 * executor, with every filesystem root under `<varDir>/hosts/local`.
 */
export function localServer(varDir: string): NewServer {
  const root = join(varDir, 'hosts', 'local');
  return {
    hostname: LOCAL_SERVER_HOSTNAME,
    privateIp: LOCAL_SERVER_PRIVATE_IP,
    roles: ['database', 'dispatcher', 'handler'],
    transport: 'local',
    sshHost: null,
    sshPort: null,
    sshUser: null,
    sshKeyRef: null,
    sshHostKey: null,
    homeRoot: join(root, 'home'),
    sharedCodeRoot: join(root, 'shared_codes'),
    nginxConfDir: join(root, 'nginx'),
    cronDir: join(root, 'cron.d'),
    certsRoot: join(root, 'certs'),
    phpFpmPoolDir: join(root, 'php-fpm'),
    state: 'active',
    capacity: null,
    dbOptionsFile: localTenantDatabases(varDir),
    // The engine's own private nginx (see embedded-web.ts); the machine's nginx, if any, is never signalled.
    nginxPidFile: join(root, 'nginx', 'nginx.pid'),
    // Chosen at start: a free high port (no root needed).
    httpPort: null,
  };
}
