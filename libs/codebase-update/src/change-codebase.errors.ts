import type { Install, SharedCodeGroup } from '@app/catalog';
import { DomainError } from '@app/common';

const short = (revision: string | null) => (revision ? revision.slice(0, 12) : 'none');

/** Why an install's codebase change is refused: each with a stable code, nothing changed. */
export const changeCodebaseErrors = {
  notLive: (install: Install) =>
    new DomainError('INSTALL_NOT_LIVE', `install ${install.id} is ${install.status}: only a live install changes codebase`, 409, { installId: install.id, status: install.status }),
  noGroup: (install: Install) => new DomainError('INSTALL_HAS_NO_CODE_GROUP', `install ${install.id} has no code group yet`, 409, { installId: install.id }),
  sameGroup: (install: Install, group: SharedCodeGroup) =>
    new DomainError('CODEBASE_SAME_GROUP', `install ${install.id} is on code group ${group.name} already`, 409, { installId: install.id, groupId: group.id }),
  groupNotReady: (group: SharedCodeGroup) =>
    new DomainError('CODE_GROUP_NOT_READY', `code group ${group.name} is ${group.state}: an install moves only to a ready group`, 409, { groupId: group.id, state: group.state }),
  revisionDiffers: (install: Install, current: string, target: SharedCodeGroup) =>
    new DomainError(
      'CODEBASE_REVISION_DIFFERS',
      `install ${install.id} runs revision ${short(current)} and code group ${target.name} is at ${short(target.revision)}: an install moves only to a group of the same revision (roll one of the groups first)`,
      409,
      { installId: install.id, installRevision: current, groupId: target.id, groupRevision: target.revision },
    ),
  tierDiffers: (install: Install, target: SharedCodeGroup) =>
    new DomainError('CODE_GROUP_TIER_DIFFERS', `install ${install.id} is ${install.license} and code group ${target.name} is for ${target.tier} installs`, 409, {
      installId: install.id, license: install.license, groupId: target.id, tier: target.tier,
    }),
  locked: (target: SharedCodeGroup) => new DomainError('CODE_GROUP_LOCKED', `code group ${target.name} is locked: no install lands on it`, 409, { groupId: target.id }),
  full: (target: SharedCodeGroup) =>
    new DomainError('CODE_GROUP_FULL', `code group ${target.name} holds ${target.installCount} of ${target.installLimit} installs: no slot left`, 409, {
      groupId: target.id, installCount: target.installCount, installLimit: target.installLimit,
    }),
  rolloutRunning: (group: SharedCodeGroup, updateId: number) =>
    new DomainError('ROLLOUT_RUNNING', `code group ${group.name} has update ${updateId} in progress: change the codebase once it ended`, 409, { groupId: group.id, updateId }),
  changeRunning: (install: Install, jobId: number) =>
    new DomainError('CODEBASE_CHANGE_RUNNING', `install ${install.id} has a codebase change in progress (job ${jobId})`, 409, { installId: install.id, jobId }),
  serverDown: (install: Install, hostnames: string[]) =>
    new DomainError('INSTALL_SERVER_DOWN', `install ${install.id} has its home on ${hostnames.join(', ')}, which is down: its link there could not be switched`, 409, { installId: install.id, servers: hostnames }),
  releaseMissing: (target: SharedCodeGroup, revision: string, hostnames: string[]) =>
    new DomainError(
      'CODEBASE_RELEASE_MISSING',
      `release ${short(revision)} of code group ${target.name} is not on ${hostnames.join(', ')}, which hold(s) the install's home: sync the group there first`,
      409,
      { groupId: target.id, revision, servers: hostnames },
    ),
};
