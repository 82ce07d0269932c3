import type { Install, InstallSite } from '@app/catalog';
import { DomainError } from '@app/common';

/** Why a site operation or a downgrade is refused: each with a stable code, nothing changed. */
export const siteErrors = {
  notLive: (install: Install, what: string) =>
    new DomainError('INSTALL_NOT_LIVE', `install ${install.id} is ${install.status}: only a live install can ${what}`, 409, { installId: install.id, status: install.status }),
  siteNotFound: (installId: number, siteId: number) => new DomainError('NOT_FOUND', `install ${installId} has no site ${siteId}`, 404, { what: 'site', id: siteId, installId }),
  hostnameTaken: (names: string[]) =>
    new DomainError('HOSTNAME_TAKEN', `Already served by a live install: ${[...new Set(names)].join(', ')}`, 409, { hostnames: [...new Set(names)] }),
  lastSite: (install: Install, site: InstallSite) =>
    new DomainError('LAST_SITE', `site ${site.id} (${site.hostname}) is the last site of install ${install.id}: an install keeps at least one (remove the install instead)`, 409, { installId: install.id, siteId: site.id }),
  tooManySites: (install: Install, max: number, count: number) =>
    new DomainError('TOO_MANY_SITES', `a ${install.license} install may have at most ${max} site(s); install ${install.id} would have ${count}`, 409, { installId: install.id, license: install.license, maxSites: max, sites: count }),
  nothingChanges: (site: InstallSite) =>
    new DomainError('HOSTNAME_UNCHANGED', `site ${site.id} is ${site.hostname} already: nothing to change`, 409, { siteId: site.id }),
  operationRunning: (install: Install, jobId: number, kind: string) =>
    new DomainError('OPERATION_RUNNING', `install ${install.id} has an operation in progress (${kind}, job ${jobId}): try again once it ended`, 409, { installId: install.id, jobId, kind }),
  badIps: (problem: string, details: Record<string, unknown> = {}) => new DomainError('IPS_NOT_USABLE', problem, 409, details),
  ipPoolExhausted: (server: string, kind: 'dedicated' | 'shared', hostname: string) =>
    new DomainError('IP_POOL_EXHAUSTED', `No free ${kind} IP left in the pool of ${server} for ${hostname}: add IPs to the pool`, 409, { server, kind }),
  notPaid: (install: Install) => new DomainError('INSTALL_NOT_PAID', `install ${install.id} is ${install.license} already`, 409, { installId: install.id, license: install.license }),
  noFreeGroup: (install: Install, revision: string) =>
    new DomainError(
      'NO_FREE_CODE_GROUP',
      `no free code group at revision ${revision.slice(0, 12)} can take install ${install.id} (ready, unlocked, with room, the release on its master): create one or roll a free group to that revision`,
      409,
      { installId: install.id, revision },
    ),
  hasCloudHandlers: (install: Install, servers: string[]) =>
    new DomainError('INSTALL_HAS_CLOUD_HANDLERS', `install ${install.id} runs on cloud handlers (${servers.join(', ')}): remove them before the downgrade`, 409, { installId: install.id, servers }),
  serverDown: (install: Install, hostnames: string[]) =>
    new DomainError('INSTALL_SERVER_DOWN', `install ${install.id} is served by ${hostnames.join(', ')}, which is down`, 409, { installId: install.id, servers: hostnames }),
};
