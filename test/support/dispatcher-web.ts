import { join } from 'node:path';
import { startNginx, stopNginx } from './nginx.js';
import { startPhpFpm, stopPhpFpm, type PhpFpm } from './php-fpm.js';
import type { NginxServer } from './testbed.js';

/** A dispatcher's web side as production has it: an nginx whose http block includes the engine's files, and php-fpm on the server's private IP. */
export interface DispatcherWeb {
  nginx: NginxServer;
  fpm: PhpFpm;
  /** The pid file to put in the server's inventory row (`nginxPidFile`). */
  pidFile: string;
}

/** Starts nginx (prefix `dir/nginx`, including `<nginxConfDir>/current/*.conf`) and php-fpm on `phpHost:9000`. */
export async function startDispatcherWeb(dir: string, nginxConfDir: string, phpHost: string): Promise<DispatcherWeb> {
  const nginx = await startNginx(join(dir, 'nginx'), { include: [join(nginxConfDir, 'current/*.conf')] });
  try {
    const fpm = await startPhpFpm(join(dir, 'fpm'), phpHost, 9000);
    return { nginx, fpm, pidFile: join(nginx.prefix, 'nginx.pid') };
  } catch (error) {
    await stopNginx(nginx);
    throw error;
  }
}

export async function stopDispatcherWeb(web: DispatcherWeb | undefined): Promise<void> {
  if (!web) return;
  await Promise.allSettled([stopNginx(web.nginx), stopPhpFpm(web.fpm)]);
}
