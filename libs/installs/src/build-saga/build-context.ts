import { posix } from 'node:path';
import type { Install, InstallSite, Server, SharedCodeGroup } from '@app/catalog';
import { groupDirOn, releaseDirOn, type CodebaseManifest } from '@app/codebases';
import { checkServerPath, type ServerAccess } from '@app/hosts';
import { cronFileName } from './cron-file.js';

/** Everything a build step needs, rebuilt from the catalog at every run (never carried in memory). */
export interface BuildContext {
  install: Install;
  sites: InstallSite[];
  group: SharedCodeGroup;
  /** The release the install's home points at (or will, once its tree is built): its `code_revision`, else the group's. */
  revision: string;
  /** That release's manifest. */
  manifest: CodebaseManifest;
  master: Server;
  /** The install's other servers (second dispatcher of a paid install). */
  replicas: Server[];
  dbServer: Server;
  /** The IPs each site listens on, per server. */
  siteIps: { siteId: number; serverId: number; ip: string }[];
  /** The job running the build, recorded with each SQL update. */
  jobId: number | null;
  /**
   * Set by the database step when it created the database in this run of the
   * job: the SQL step of the same run then knows it empty and skips its
   * reset (one client call less). A resumed run does not have it.
   */
  freshDatabase?: boolean;
}

/** The install's home on a server: `<home root>/<fs name>`. */
export const homeOn = (server: Server, install: Install): string => posix.join(server.homeRoot, install.fsName);

/** A release of the group on a server (code-layout.ts). */
export const checkoutOn = (server: Server, group: SharedCodeGroup, revision: string): string => releaseDirOn(server, group, revision);

/** The group's directory on a server (its releases are below it). */
export const groupOn = (server: Server, group: SharedCodeGroup): string => groupDirOn(server, group);

/** The cron.d file of an install on a server. */
export const cronFileOn = (server: Server, install: Pick<Install, 'fsName'>): string => posix.join(server.cronDir, cronFileName(install));

/** Where the install's FTP account lands: bind mounts of its copied paths appear there. */
export const ftpRootOn = (server: Server, install: Install): string => posix.join(homeOn(server, install), 'ftp');

/**
 * Empties the manifest's cache directories of an install's home on a server
 * (the directories kept, with their owners): only what is inside each, never
 * through a link out of it, never across a mount.
 */
export async function emptyCaches(access: ServerAccess, server: Server, install: Install, paths: readonly string[]): Promise<void> {
  if (paths.length === 0) return;
  const dirs = paths.map((p) => checkServerPath(server, posix.join(homeOn(server, install), p), { allowRoot: false }));
  await access.executorFor(server).mustRun(server, ['sh', '-c', 'for d do [ -d "$d" ] && [ ! -L "$d" ] && find "$d" -xdev -mindepth 1 -delete; done; exit 0', 'clear', ...dirs]);
}
