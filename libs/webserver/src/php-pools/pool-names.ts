import { posix } from 'node:path';
import type { EntityManager } from 'typeorm';
import { InstallServer, type Install, type Server } from '@app/catalog';
import type { EngineConfig } from '@app/config';

/**
 * Names and places every part of the per-install PHP side agrees on: the
 * install's system user, its pool's socket or port, its private PHP dirs.
 * (The pool pipeline renders them, the build saga creates them, the nginx
 * loader points the upstream at them, the cloud-handler module allocates
 * ports.)
 */

/**
 * Whether the engine manages a server's PHP: per-install system users and
 * php-fpm pools. A server without a php-fpm pool dir keeps one shared pool
 * on port 9000 that the company runs itself; so does the embedded default's
 * own machine, whose php-fpm runs as the engine's user and cannot switch
 * users.
 */
export function managesPhp(server: Pick<Server, 'phpFpmPoolDir' | 'transport'>, config: Pick<EngineConfig, 'embedded'>): boolean {
  return server.phpFpmPoolDir !== null && !(config.embedded && server.transport === 'local');
}

/**
 * The install's system user and group on every managed server running its
 * PHP: from the install's id (unique forever, short: Linux names hold 32
 * characters, an fs name may alone). Created with the comment
 * `installUserComment`, never adopted: an existing account without it is a
 * conflict.
 */
export const phpUserOf = (install: Pick<Install, 'id'>): string => `shop${install.id}`;

/**
 * The uid and gid of the install's user and group: fixed per install, the
 * same on every server, above the ranges systems and containers hand out
 * (useradd's system range holds ~900 accounts; a handler holds thousands)
 * and below 2^31.
 */
export const PHP_ID_BASE = 2_000_000_000;
export const phpIdOf = (install: Pick<Install, 'id'>): number => PHP_ID_BASE + install.id;

/** The GECOS comment of the install's system user: how the engine knows the account is the install's. */
export const installUserComment = (install: Pick<Install, 'id'>): string => `shop-engine install ${install.id}`;

/** The install's private PHP dirs, inside its home (dot-names: nginx denies them): sessions and upload tmp, the install user's, mode 0700. */
export const PHP_PRIVATE_DIR = '.php';
export const PHP_SESSIONS_DIR = '.php/sessions';
export const PHP_TMP_DIR = '.php/tmp';

/** The root-owned directory of the unix sockets of a handler's pools (mode 0755; each socket nginx's user's, 0660). */
export const poolRunDir = (server: Pick<Server, 'phpFpmPoolDir'>): string => posix.join(poolDirOf(server), 'run');

/**
 * Where the install's pool listens on a handler that is also a dispatcher
 * (its own nginx is the only client): a stable path per install.
 */
export const poolSocketOf = (server: Pick<Server, 'phpFpmPoolDir'>, install: Pick<Install, 'fsName'>): string => posix.join(poolRunDir(server), `${install.fsName}.sock`);

/** Whether an install's pool on `handler` listens on a unix socket (the handler is a dispatcher) rather than a TCP port on its private IP. */
export const poolListensOnSocket = (handler: Pick<Server, 'roles'>): boolean => handler.roles.includes('dispatcher');

/** The pool pipeline's file of an install, relative to a generation. */
export const poolFileOf = (install: Pick<Install, 'fsName'>): string => `${install.fsName}.conf`;

/** The ports pools listen on, on a handler's private IP. */
export const POOL_PORT_FIRST = 20000;
export const POOL_PORT_LAST = 59999;

function poolDirOf(server: Pick<Server, 'phpFpmPoolDir'>): string {
  if (!server.phpFpmPoolDir) throw new Error('the server has no php-fpm pool dir: its PHP is not managed by the engine');
  return server.phpFpmPoolDir;
}

/**
 * A free pool port on `serverId`: the lowest port above every one in use,
 * else the lowest gap. Within the caller's transaction; the unique index
 * (server_id, pool_port) settles two allocations racing (the loser's
 * transaction fails and runs again).
 */
export async function allocatePoolPort(manager: EntityManager, serverId: number): Promise<number> {
  const rows = await manager
    .createQueryBuilder(InstallServer, 'isv')
    .select('isv.poolPort', 'port')
    .where('isv.serverId = :serverId', { serverId })
    .andWhere('isv.poolPort IS NOT NULL')
    .orderBy('isv.poolPort', 'ASC')
    .getRawMany<{ port: number }>();
  const used = rows.map((r) => Number(r.port));
  const top = used.length === 0 ? POOL_PORT_FIRST - 1 : used[used.length - 1]!;
  if (top < POOL_PORT_LAST) return Math.max(top + 1, POOL_PORT_FIRST);
  let candidate = POOL_PORT_FIRST;
  for (const port of used) {
    if (port > candidate) break;
    if (port === candidate) candidate += 1;
  }
  if (candidate > POOL_PORT_LAST) throw new Error(`no free pool port on server ${serverId} (${POOL_PORT_FIRST}-${POOL_PORT_LAST} all taken)`);
  return candidate;
}
