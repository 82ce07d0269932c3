import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalExecutor, type ServerRoots } from '@app/hosts';
import { executorContract } from '../support/executor-contract.js';

const base = mkdtempSync(join(tmpdir(), 'local-executor-'));
chmodSync(base, 0o755);

executorContract(
  'LocalExecutor',
  async () => {
    const root = (name: string) => {
      const dir = join(base, 'srv', name);
      mkdirSync(dir, { recursive: true });
      return dir;
    };
    const server: ServerRoots = {
      hostname: 'localhost',
      homeRoot: root('home'),
      sharedCodeRoot: root('shared_codes'),
      nginxConfDir: root('nginx'),
      cronDir: root('cron.d'),
      certsRoot: root('certs'),
      phpFpmPoolDir: null,
    };
    const outside = join(base, 'outside');
    mkdirSync(outside);
    return { executor: new LocalExecutor(), server, outside };
  },
  async () => rmSync(base, { recursive: true, force: true }),
);
