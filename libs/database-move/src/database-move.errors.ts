import { DomainError } from '@app/common';
import type { Server } from '@app/catalog';

export const databaseMoveErrors = {
  sameServer: (server: Server) => new DomainError('SAME_DATABASE_SERVER', `${server.hostname} is both from and to: nothing to move`, 400, { serverId: server.id }),
  notDatabase: (server: Server) => new DomainError('NOT_A_DATABASE_SERVER', `${server.hostname} has no database role`, 409, { serverId: server.id }),
  nothingToMove: (server: Server) => new DomainError('NOTHING_TO_MOVE', `no live install has its database on ${server.hostname}`, 409, { serverId: server.id }),
  running: (moveId: number) => new DomainError('DATABASE_MOVE_RUNNING', `database move ${moveId} is in progress: one at a time (follow it, or wait for it to end)`, 409, { moveId }),
  refused: (to: Server, problems: string[]) =>
    new DomainError('DATABASE_MOVE_REFUSED', `refused, nothing changed: ${problems.length} precondition(s) fail on ${to.hostname}: ${problems.slice(0, 20).join('; ')}${problems.length > 20 ? '; ...' : ''}`, 409, { problems }),
};
