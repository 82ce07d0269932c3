import { DomainError } from '@app/common';

/** Errors of the cloud-handler module: each with a stable code an operator's tooling can test. */
export const handlerErrors = {
  installNotLive: (installId: number, status: string) =>
    new DomainError('INSTALL_NOT_LIVE', `install ${installId} is ${status}: handlers are added to and removed from live installs only`, 409, { installId, status }),
  notAHandlerServer: (serverId: number, hostname: string) =>
    new DomainError('NOT_A_HANDLER_SERVER', `${hostname} (server ${serverId}) has neither the cloud nor the handler role: it cannot run an install's PHP`, 409, { serverId }),
  serverNotActive: (serverId: number, hostname: string, state: string) =>
    new DomainError('SERVER_NOT_ACTIVE', `${hostname} (server ${serverId}) is ${state}: only an active server takes new installs`, 409, { serverId, state }),
  noPrivateIp: (serverId: number, hostname: string) =>
    new DomainError('SERVER_HAS_NO_PRIVATE_IP', `${hostname} (server ${serverId}) has no private IP: the dispatchers reach a handler's pools there`, 409, { serverId }),
  layoutDiffers: (serverId: number, hostname: string, dispatcher: string, field: 'homeRoot' | 'sharedCodeRoot', theirs: string, ours: string) =>
    new DomainError(
      'HANDLER_LAYOUT_DIFFERS',
      `${hostname} (server ${serverId}) has ${field} ${theirs}, ${dispatcher} has ${ours}: nginx passes PHP the script's path on the dispatcher, so a handler must hold the install at the same paths`,
      409,
      { serverId, field, handler: theirs, dispatcher: ours },
    ),
  handlerExists: (installId: number, serverId: number) =>
    new DomainError('HANDLER_EXISTS', `server ${serverId} already handles install ${installId}`, 409, { installId, serverId }),
  noSuchHandler: (installId: number, serverId: number) =>
    new DomainError('NOT_FOUND', `server ${serverId} does not handle install ${installId}`, 404, { installId, serverId }),
  masterNotRemovable: (installId: number, serverId: number) =>
    new DomainError('HANDLER_IS_MASTER', `server ${serverId} is the master of install ${installId}: its files and builds live there; it is never removed as a handler`, 409, { installId, serverId }),
  permanentNotRemovable: (installId: number, serverId: number, role: string) =>
    new DomainError('HANDLER_NOT_CLOUD', `server ${serverId} is the ${role} of install ${installId}, not one of its clouds: only clouds are removed here`, 409, { installId, serverId, role }),
  handlerBusy: (installId: number, serverId: number, state: string) =>
    new DomainError('HANDLER_BUSY', `server ${serverId} is being ${state === 'adding' ? 'added to' : 'removed from'} install ${installId}; wait for its job`, 409, { installId, serverId, state }),
  noCloud: (installId: number) =>
    new DomainError('NO_ACTIVE_CLOUD', `install ${installId} has no active cloud handler with a weight: its permanent handlers cannot all be backups (nginx needs a primary server)`, 409, { installId }),
  onlyHandler: (serverId: number, hostname: string, installIds: number[]) =>
    new DomainError(
      'ONLY_HANDLER',
      `${hostname} (server ${serverId}) is the only active handler of install(s) ${installIds.join(', ')}: add another handler (or bring one back up) first`,
      409,
      { serverId, installIds },
    ),
  notCloudServer: (serverId: number, hostname: string) =>
    new DomainError('NOT_A_CLOUD_SERVER', `${hostname} (server ${serverId}) is not a cloud server (role cloud, not a dispatcher)`, 409, { serverId }),
  notDrained: (serverId: number, hostname: string, state: string) =>
    new DomainError('SERVER_NOT_DRAINED', `${hostname} (server ${serverId}) is ${state}: drain it first (POST /v1/cloud-servers/${serverId}/drain)`, 409, { serverId, state }),
  alreadyDraining: (serverId: number, hostname: string) =>
    new DomainError('SERVER_DRAINING', `${hostname} (server ${serverId}) is already draining`, 409, { serverId }),
  serverDown: (serverId: number, hostname: string) =>
    new DomainError('SERVER_DOWN', `${hostname} (server ${serverId}) is down: bring it back (PATCH /v1/servers/${serverId} state active) before draining it`, 409, { serverId }),
  leaseInPast: (serverId: number) =>
    new DomainError('LEASE_IN_PAST', `a lease that has already ended would drain server ${serverId} at once: give a future time, or drain it`, 400, { serverId }),
};
