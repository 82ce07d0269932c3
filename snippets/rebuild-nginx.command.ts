import { InjectDataSource } from '@nestjs/typeorm';
import { Command, CommandRunner, Option } from 'nest-commander';
import type { DataSource } from 'typeorm';
import { Job, Server } from '@app/catalog';
import { NginxPipeline, NginxRebuilds } from '@app/webserver';
import { out, SnippetError } from './cli-output.js';
import { serverId } from './servers.command.js';

interface RebuildOptions {
  server?: string;
  dryRun?: boolean;
  rollback?: boolean;
  wait?: boolean;
  timeout?: number;
}

/**
 * The seed's "rebuild nginx on both dispatchers", as one command: queues a
 * rebuild of every dispatcher (or one) and waits until a worker has it
 * live; `--dry-run` prints the diff of what would change; `--rollback` puts
 * the last good generation back.
 */
@Command({
  name: 'rebuild-nginx',
  description: 'rebuild the nginx config of the dispatchers from the catalog (--dry-run: print the diff; --rollback: last good config back)',
})
export class RebuildNginxCommand extends CommandRunner {
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly pipeline: NginxPipeline,
    private readonly rebuilds: NginxRebuilds,
  ) {
    super();
  }

  async run(_args: string[], options: RebuildOptions): Promise<void> {
    const servers = await this.dispatchers(options.server);
    if (options.rollback) {
      if (!options.server) throw new SnippetError('--rollback needs --server <id>: roll back one dispatcher at a time');
      const server = servers[0]!;
      // Through the queue, on the dispatcher's resource key: never while a rebuild of it runs.
      const jobId = await this.rebuilds.requestRollback(server.id);
      out(`${server.hostname}: rollback queued (job ${jobId})`);
      if (options.wait === false) return;
      await this.waitForJob(server, jobId, (options.timeout ?? 600) * 1000);
      const row = await this.rebuilds.configRow(server.id);
      out(`${server.hostname}: live generation is ${row.liveGeneration}; the next rebuild applies the catalog again`);
      return;
    }
    for (const server of servers) {
      if (server.state === 'down') {
        out(`${server.hostname}: down, skipped (rebuilt when it is back)`);
        continue;
      }
      if (options.dryRun) {
        const report = await this.pipeline.apply(server, { dryRun: true });
        if (report.generation === null) out(`${server.hostname}: nothing would change`);
        else {
          out(`${server.hostname}: ${report.filesWritten} file(s) would be written, ${report.removed.length} removed`);
          if (report.diff) out(report.diff.trimEnd());
        }
        for (const q of report.quarantined) out(`${server.hostname}: install ${q.installId} (${q.fsName}) would be quarantined: ${q.reason}`);
        continue;
      }
      const { jobId } = await this.rebuilds.request(server.id);
      const { wantedGeneration } = await this.rebuilds.configRow(server.id);
      out(`${server.hostname}: rebuild ${jobId === null ? 'joined the one already queued' : `queued (job ${jobId})`}`);
      if (options.wait === false) continue;
      await this.waitFor(server, wantedGeneration, (options.timeout ?? 600) * 1000);
    }
  }

  private async waitFor(server: Server, generation: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const row = await this.rebuilds.configRow(server.id);
      if (row.appliedGeneration >= generation) {
        out(`${server.hostname}: live on ${row.liveGeneration}`);
        return;
      }
      if (Date.now() > deadline) {
        throw new SnippetError(`${server.hostname}: not applied after ${timeoutMs / 1000} s${row.lastError ? `: ${row.lastError}` : ' (is a worker running?)'}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }

  private async waitForJob(server: Server, jobId: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const job = await this.dataSource.getRepository(Job).findOneBy({ id: jobId });
      if (job?.state === 'done') return;
      if (!job || job.state === 'dead' || job.state === 'cancelled') {
        throw new SnippetError(`${server.hostname}: rollback ${job ? job.state : 'gone'}${job?.lastError ? `: ${job.lastError}` : ''}`);
      }
      if (Date.now() > deadline) throw new SnippetError(`${server.hostname}: rollback not run after ${timeoutMs / 1000} s (is a worker running?)`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  private async dispatchers(ref?: string): Promise<Server[]> {
    const repo = this.dataSource.getRepository(Server);
    if (ref !== undefined) {
      const server = await repo.findOneBy({ id: serverId(ref) });
      if (!server) throw new SnippetError(`no server ${ref}`);
      if (!server.roles.includes('dispatcher')) throw new SnippetError(`server ${ref} (${server.hostname}) is not a dispatcher`);
      return [server];
    }
    const all = (await repo.find({ order: { id: 'ASC' } })).filter((s) => s.roles.includes('dispatcher'));
    if (all.length === 0) throw new SnippetError('no dispatcher in the inventory');
    return all;
  }

  @Option({ flags: '--server <id>', description: 'one dispatcher (default: every dispatcher)' })
  parseServer(value: string): string {
    return value;
  }

  @Option({ flags: '--dry-run', description: 'print the diff of what would change; change nothing' })
  parseDryRun(): boolean {
    return true;
  }

  @Option({ flags: '--rollback', description: 'put the last good generation back live (needs --server)' })
  parseRollback(): boolean {
    return true;
  }

  @Option({ flags: '--no-wait', description: 'queue the rebuild and return' })
  parseNoWait(): boolean {
    return false;
  }

  @Option({ flags: '--timeout <seconds>', description: 'how long to wait for the rebuild (default 600)' })
  parseTimeout(value: string): number {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > 86_400) throw new SnippetError('--timeout must be a number of seconds');
    return n;
  }
}
