import type { Install } from '@app/catalog';
import { DomainError, ValidationFailedError } from '@app/common';

/** Why a removal, a restore or an FTP reset is refused: each with a stable code, nothing changed. */
export const removalErrors = {
  notRemovable: (install: Install) =>
    new DomainError('INSTALL_NOT_REMOVABLE', `install ${install.id} is ${install.status}: only a live or failed install is removed`, 409, { installId: install.id, status: install.status }),
  busy: (install: Install, jobId: number, kind: string) =>
    new DomainError('INSTALL_BUSY', `install ${install.id} has ${kind} job ${jobId} queued or running: try again once it ended`, 409, { installId: install.id, jobId, kind }),
  serverDown: (install: Install, hostnames: string[]) =>
    new DomainError('INSTALL_SERVER_DOWN', `install ${install.id} has its master on ${hostnames.join(', ')}, which is down: its backup could not be taken`, 409, { installId: install.id, servers: hostnames }),
  notRemoved: (install: Install) =>
    new DomainError('INSTALL_NOT_REMOVED', `install ${install.id} is ${install.status}: only a removed install is restored`, 409, { installId: install.id, status: install.status }),
  noBackup: (install: Install) =>
    new DomainError('NO_BACKUP', `install ${install.id} has no kept backup (purged, failed, or never taken): it cannot be restored`, 409, { installId: install.id }),
  hostnameTaken: (names: string[]) =>
    new DomainError('HOSTNAME_TAKEN', `Already claimed by another install since the removal: ${names.join(', ')}`, 409, { hostnames: names }),
  groupUnavailable: (install: Install, groupId: number | null, why: string) =>
    new DomainError('CODE_GROUP_UNAVAILABLE', `install ${install.id} cannot go back to its code group ${groupId ?? '(none)'}: ${why}`, 409, { installId: install.id, groupId }),
  notLive: (install: Install) =>
    new DomainError('INSTALL_NOT_LIVE', `install ${install.id} is ${install.status}: FTP permissions are reset on a live install only`, 409, { installId: install.id, status: install.status }),
};

/** An install id from a path or a snippet: a positive 32-bit integer. */
export function checkInstallId(id: number): number {
  if (!Number.isSafeInteger(id) || id < 1 || id > 2_147_483_647) throw new ValidationFailedError([{ field: 'id', problems: ['must be a positive integer'] }]);
  return id;
}
