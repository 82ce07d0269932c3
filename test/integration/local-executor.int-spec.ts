import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalExecutor } from '@app/hosts';
import { executorContract } from '../support/executor-contract.js';
import { tempServerRoots } from '../support/server-roots.js';

const base = mkdtempSync(join(tmpdir(), 'local-executor-'));
chmodSync(base, 0o755);

executorContract(
  'LocalExecutor',
  async () => {
    const server = tempServerRoots(base, 'localhost');
    const outside = join(base, 'outside');
    mkdirSync(outside);
    return { executor: new LocalExecutor(), server, outside };
  },
  async () => rmSync(base, { recursive: true, force: true }),
);
