import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Injectable, type INestApplicationContext, type Type } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { Job } from '@app/catalog';
import { HostsModule, ServerAccess, type ServerRoots } from '@app/hosts';
import { defineJobKind, JobHandler, QueueService, type JobContext } from '@app/queue';
import { createTestCatalog, type TestCatalog } from '../support/catalog.js';
import { eventually, startQueueContext } from '../support/queue-context.js';
import { tempServerRoots } from '../support/server-roots.js';
import { readTestbed } from '../support/testbed.js';

/** Two remote commands in a row, as a saga step runs them (a long SQL file, then the next). */
const LONG_STEP = defineJobKind<{ transport: 'ssh' | 'local'; seconds: string; marker: string }>('test.long-step', { maxAttempts: 1 });

const base = mkdtempSync(join(tmpdir(), 'lease-lost-'));
const servers: Record<'ssh' | 'local', ServerRoots & { transport: 'ssh' | 'local'; id: number }> = {
  local: { ...tempServerRoots(join(base, 'local'), 'local.example.net'), transport: 'local', id: 1 },
  ssh: { ...tempServerRoots(join(base, 'ssh'), 'ssh.example.net'), transport: 'ssh', id: 2 },
};

@Injectable()
class LongStep {
  constructor(private readonly access: ServerAccess) {}

  @JobHandler(LONG_STEP)
  async run(payload: { transport: 'ssh' | 'local'; seconds: string; marker: string }, context: JobContext): Promise<void> {
    const server = payload.transport === 'ssh' ? { ...servers.ssh, ...sshOf() } : servers.local;
    const executor = this.access.executorFor(server as never);
    context.log('started');
    // No signal passed: the job's scope carries it to every command the handler starts.
    await executor.run(server, ['sleep', payload.seconds]).catch(() => undefined);
    // A handler that swallows the abort and goes on: the next command must not run either.
    await executor.run(server, ['touch', payload.marker]).catch(() => undefined);
  }
}

function sshOf() {
  const { sshd } = readTestbed();
  return { sshHost: sshd.host, sshPort: sshd.port, sshUser: sshd.user, sshKeyRef: sshd.privateKeyPath, sshHostKey: sshd.hostKeyFingerprint };
}

/** Whether a `sleep <seconds>` is running on this machine (the SSH test server is this machine too). */
const sleeping = (seconds: string) => {
  try {
    return execFileSync('pgrep', ['-f', `^sleep ${seconds}$`]).toString().trim() !== '';
  } catch {
    return false;
  }
};

/**
 * A job that loses its lease (another worker took it over) stops running
 * its remote commands at once: the one running is killed on the server,
 * and no further one starts, over SSH and locally.
 */
describe('a job that loses its lease (MariaDB, real sshd)', () => {
  let catalog: TestCatalog;
  let app: INestApplicationContext;

  beforeAll(async () => {
    catalog = await createTestCatalog('mariadb', 'lease_lost');
    app = await startQueueContext(catalog.url, [LongStep], { concurrency: 2, pollMs: 20, reapEveryMs: 200 }, [HostsModule.forRoot({ http: false })] as unknown as Type[]);
  });
  afterAll(async () => {
    await app?.close();
    await catalog?.drop();
    rmSync(base, { recursive: true, force: true });
  });

  it.each(['ssh', 'local'] as const)('kills its running command over %s and starts no other', async (transport) => {
    const seconds = transport === 'ssh' ? '61.25' : '61.75';
    const marker = join(base, `after-${transport}`);
    const { job } = await app.get(QueueService).enqueue(LONG_STEP, { transport, seconds, marker });
    await eventually(async () => sleeping(seconds), 20_000, `the remote sleep over ${transport}`);
    // Another worker takes the job over (its fence moves): this worker's next renewal finds the lease gone.
    await app.get(DataSource).query("UPDATE jobs SET fence = fence + 1, lease_owner = 'elsewhere:1:x:y' WHERE id = ?", [job.id]);
    const started = Date.now();
    await eventually(async () => !sleeping(seconds), 15_000, 'the remote command to be killed');
    // Found by the heartbeat (every 5 s) and killed at once.
    expect(Date.now() - started).toBeLessThan(8_000);
    await new Promise((r) => setTimeout(r, 1_000));
    expect(existsSync(marker)).toBe(false);
    expect((await app.get(DataSource).getRepository(Job).findOneByOrFail({ id: job.id })).leaseOwner).toBe('elsewhere:1:x:y');
  });
});
