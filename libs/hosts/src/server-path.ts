import { posix } from 'node:path';

/** The filesystem roots a server declares; the access layer touches nothing outside them. */
export interface ServerRoots {
  hostname: string;
  homeRoot: string;
  sharedCodeRoot: string;
  nginxConfDir: string;
  cronDir: string;
  certsRoot: string;
  phpFpmPoolDir: string | null;
}

export class UnsafePathError extends Error {
  override name = 'UnsafePathError';
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`refused path ${JSON.stringify(path)}: ${reason}`);
  }
}

export function rootsOf(server: ServerRoots): string[] {
  return [server.homeRoot, server.sharedCodeRoot, server.nginxConfDir, server.cronDir, server.certsRoot, server.phpFpmPoolDir]
    .filter((r): r is string => typeof r === 'string' && r !== '')
    .map((r) => posix.normalize(r).replace(/\/+$/, '') || '/');
}

/**
 * Checks a path before any command or file operation uses it: absolute, no
 * NUL, no `..` segment (refused, not resolved: a path that needs resolving is
 * a mistake or an attack), and inside one of the server's roots. With
 * `allowRoot: false` (removals) a root itself is refused too. Symlinks are
 * checked by the executor against the real filesystem.
 */
export function checkServerPath(server: ServerRoots, path: string, options: { allowRoot?: boolean } = {}): string {
  if (typeof path !== 'string' || path === '') throw new UnsafePathError(String(path), 'empty');
  if (path.includes('\0')) throw new UnsafePathError(path, 'contains a NUL byte');
  if (!path.startsWith('/')) throw new UnsafePathError(path, 'not absolute');
  if (path.split('/').some((segment) => segment === '..')) throw new UnsafePathError(path, 'contains ..');
  if (/[\n\r]/.test(path)) throw new UnsafePathError(path, 'contains a line break');
  const normalized = posix.normalize(path).replace(/\/+$/, '') || '/';
  const root = rootsOf(server).find((r) => normalized === r || normalized.startsWith(r === '/' ? '/' : `${r}/`));
  if (!root) throw new UnsafePathError(path, `outside the roots of ${server.hostname} (${rootsOf(server).join(', ')})`);
  if (normalized === root && options.allowRoot === false) throw new UnsafePathError(path, `is the root ${root} itself`);
  return normalized;
}
