import { posix } from 'node:path';
import type { Server, SharedCodeGroup } from '@app/catalog';
import { DomainError } from '@app/common';

/**
 * Where a code group's files live on a server (SPEC.md "Codebase manifest",
 * issue 16): under `<shared code root>/<group>`, one directory per revision
 * in `releases/<commit>` (never changed once made), and on the master the
 * group's git repository (`repo.git`, bare) the releases are made from. A
 * home reaches its release through one link, `<home>/.code`, and every link
 * of its tree goes through it: switching an install to another release is
 * one atomic rename of that link.
 */
export const RELEASES_DIR = 'releases';
export const REPO_DIR = 'repo.git';
export const CODE_LINK = '.code';

const COMMIT = /^[0-9a-f]{40}([0-9a-f]{24})?$/;

/** A full commit id (SHA-1 or SHA-256), the only name a release directory has. */
export function checkCommit(revision: string): string {
  if (!COMMIT.test(revision)) throw new DomainError('INVALID_REVISION', `${JSON.stringify(revision)} is not a full commit id`);
  return revision;
}

/** The group's directory on a server: same name under its shared code root. */
export const groupDirOn = (server: Pick<Server, 'sharedCodeRoot'>, group: Pick<SharedCodeGroup, 'path'>): string => posix.join(server.sharedCodeRoot, posix.basename(group.path));

/** One release of the group on a server. */
export const releaseDirOn = (server: Pick<Server, 'sharedCodeRoot'>, group: Pick<SharedCodeGroup, 'path'>, revision: string): string =>
  posix.join(groupDirOn(server, group), RELEASES_DIR, checkCommit(revision));

/** The group's git repository on its master. */
export const repoDirOn = (server: Pick<Server, 'sharedCodeRoot'>, group: Pick<SharedCodeGroup, 'path'>): string => posix.join(groupDirOn(server, group), REPO_DIR);
