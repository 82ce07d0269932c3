import { join } from 'node:path';
import type { NewServer } from '@app/catalog';

export const LOCAL_SERVER_HOSTNAME = 'localhost';

/**
 * The one server of the embedded default: this machine, reached by the local
 * executor, with every filesystem root under `<varDir>/hosts/local`.
 */
export function localServer(varDir: string): NewServer {
  const root = join(varDir, 'hosts', 'local');
  return {
    hostname: LOCAL_SERVER_HOSTNAME,
    privateIp: '127.0.0.1',
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
    dbOptionsFile: null,
    // The machine's own nginx (if any) does not include the engine's files: never signalled.
    nginxPidFile: join(root, 'nginx', 'nginx.pid'),
  };
}
