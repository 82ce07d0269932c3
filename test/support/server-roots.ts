import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ServerRoots } from '@app/hosts';

/** A server whose filesystem roots are fresh directories under `base` (tests and benchmarks). */
export function tempServerRoots(base: string, hostname: string): ServerRoots {
  const root = (name: string) => {
    const dir = join(base, 'srv', name);
    mkdirSync(dir, { recursive: true });
    return dir;
  };
  return {
    hostname,
    homeRoot: root('home'),
    sharedCodeRoot: root('shared_codes'),
    nginxConfDir: root('nginx'),
    cronDir: root('cron.d'),
    certsRoot: root('certs'),
    phpFpmPoolDir: null,
  };
}
