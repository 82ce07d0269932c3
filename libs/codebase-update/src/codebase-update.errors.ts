import { DomainError } from '@app/common';

/** Errors of the codebase-update module: each with a stable code an operator's tooling can test. */
export const codeUpdateErrors = {
  alreadyApplied: (name: string, installIds: number[]) =>
    new DomainError(
      'SNIPPET_ALREADY_APPLIED',
      `snippet ${name} is already applied to install(s) ${installIds.join(', ')} (database_updates snippet:${name}): nothing was queued; give force to run it again`,
      409,
      { name, installIds },
    ),
  notLive: (installs: { id: number; status: string }[]) =>
    new DomainError(
      'INSTALL_NOT_LIVE',
      `install(s) ${installs.map((i) => `${i.id} (${i.status})`).join(', ')} are not live: a snippet runs on live installs only; nothing was queued`,
      409,
      { installIds: installs.map((i) => i.id), statuses: Object.fromEntries(installs.map((i) => [i.id, i.status])) },
    ),
  unknownInstalls: (installIds: number[]) => new DomainError('NOT_FOUND', `install(s) ${installIds.join(', ')} do not exist`, 404, { what: 'install', installIds }),
  noLiveInstalls: (groupId: number) => new DomainError('NO_LIVE_INSTALLS', `code group ${groupId} has no live install: nothing to run the snippet on`, 409, { groupId }),
  groupNotReady: (groupId: number, installIds: number[], why: string) =>
    new DomainError('CODE_GROUP_NOT_READY', `the SQL settings of the code group of install(s) ${installIds.join(', ')} are unknown: ${why}`, 409, { groupId, installIds }),
  emptySnippet: () => new DomainError('SNIPPET_EMPTY', 'the snippet holds no SQL statement (only comments or blanks)', 400),
  tooLarge: (bytes: number, max: number) => new DomainError('SNIPPET_TOO_LARGE', `the snippet is ${bytes} bytes; at most ${max}`, 400, { bytes, max }),
  refusedSql: (message: string) => new DomainError('SNIPPET_REFUSED', `the snippet cannot be prepared with its group's SQL settings: ${message}`, 400),
};
