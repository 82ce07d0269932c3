import { posix } from 'node:path';
import type { Install, Server } from '@app/catalog';

/** The install's own certificate directory on a server: `<certs root>/<fs name>` (0700, root's). */
export const certDirOn = (server: Pick<Server, 'certsRoot'>, install: Pick<Install, 'fsName'>): string => posix.join(server.certsRoot, install.fsName);

/**
 * A pair's files in the install's directory, named by the leaf's sha256
 * prefix: a new pair never overwrites the one serving, which stays until
 * the new one is proven served.
 */
export function pairFilesOn(server: Pick<Server, 'certsRoot'>, install: Pick<Install, 'fsName'>, sha256: string): { pem: string; key: string } {
  const base = posix.join(certDirOn(server, install), `${install.fsName}-${sha256.slice(0, 16)}`);
  return { pem: `${base}.crt`, key: `${base}.key` };
}

/** Whether a catalog path is a file the engine wrote for this install (only those are ever deleted). */
export const isOurs = (path: string | null, server: Pick<Server, 'certsRoot'>, install: Pick<Install, 'fsName'>): path is string =>
  path !== null && posix.dirname(path) === certDirOn(server, install) && /^[a-z][a-z0-9]{0,31}-[0-9a-f]{16}\.(crt|key)$/.test(posix.basename(path));

/** Key files belong to root (nginx's master reads them as root); the embedded default run by a user keeps its own. */
export function rootOwner(server: Pick<Server, 'transport' | 'sshUser'>): string | undefined {
  const root = server.transport === 'local' ? process.getuid?.() === 0 : server.sshUser === 'root';
  return root ? 'root:root' : undefined;
}
