import { InjectDataSource } from '@nestjs/typeorm';
import { Command, CommandRunner, Option } from 'nest-commander';
import type { DataSource } from 'typeorm';
import { Job } from '@app/catalog';
import { CloudServersService, InstallHandlersService, MAX_WEIGHT } from '@app/cloud-handlers';
import { out, SnippetError } from './cli-output.js';
import { serverId } from './servers.command.js';
import { cliActor } from './token-create.command.js';

/**
 * The seed's cloud_manager as snippets, thin over the cloud-handler
 * services (the same as the admin API): each queues its job in one
 * transaction and, unless `--no-wait`, follows it until a worker has done it.
 */
const by = () => ({ actor: cliActor(), via: 'cli' as const });

interface WaitOptions {
  wait?: boolean;
  timeout?: number;
}

function installId(text: string | undefined): number {
  if (!/^\d{1,9}$/.test(text ?? '')) throw new SnippetError('the install id is a number (GET /v1/installs)');
  return Number(text);
}

/** Follows a job to its end; exit 1 when it ends dead or cancelled. */
async function follow(dataSource: DataSource, jobId: number, what: string, options: WaitOptions): Promise<void> {
  out(`${what}: job ${jobId} queued`);
  if (options.wait === false) return;
  const deadline = Date.now() + (options.timeout ?? 1800) * 1000;
  let seen = '';
  for (;;) {
    const job = await dataSource.getRepository(Job).findOneBy({ id: jobId });
    if (!job) throw new SnippetError(`${what}: job ${jobId} is gone`);
    const state = `${job.state}${job.lastError ? `: ${job.lastError}` : ''}`;
    if (state !== seen && job.state !== 'done') out(`${what}: ${state}`);
    seen = state;
    if (job.state === 'done') {
      out(`${what}: done`);
      return;
    }
    if (job.state === 'dead' || job.state === 'cancelled') throw new SnippetError(`${what}: job ${jobId} ${job.state}${job.lastError ? `: ${job.lastError}` : ''} (shopctl jobs:show ${jobId})`);
    if (Date.now() > deadline) throw new SnippetError(`${what}: job ${jobId} not done after ${options.timeout ?? 1800} s (is a worker running?)`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

abstract class FollowingCommand extends CommandRunner {
  @Option({ flags: '--no-wait', description: 'queue the job and return' })
  parseNoWait(): boolean {
    return false;
  }

  @Option({ flags: '--timeout <seconds>', description: 'how long to follow the job (default 1800)' })
  parseTimeout(value: string): number {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > 86_400) throw new SnippetError('--timeout must be a number of seconds');
    return n;
  }
}

@Command({ name: 'cloud:add-install', arguments: '<install> <server>', description: "add a cloud (or handler) server to an install: files, shared code, user, crons, pool, upstream (the seed's --action=add_install)" })
export class CloudAddInstallCommand extends FollowingCommand {
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly handlers: InstallHandlersService,
  ) {
    super();
  }

  async run([install, server]: string[], options: WaitOptions & { weight?: number }): Promise<void> {
    const { jobId, handler } = await this.handlers.add(installId(install), serverId(server), options.weight, by());
    await follow(this.dataSource, jobId, `install ${install} on ${handler.hostname}`, options);
  }

  @Option({ flags: '--weight <n>', description: `its upstream weight, 0-${MAX_WEIGHT} (default 1)` })
  parseWeight(value: string): number {
    const n = Number(value);
    if (!/^\d{1,3}$/.test(value) || n > MAX_WEIGHT) throw new SnippetError(`--weight must be a whole number from 0 to ${MAX_WEIGHT}`);
    return n;
  }
}

@Command({ name: 'cloud:remove-install', arguments: '<install> <server>', description: "take a cloud off an install: out of every upstream, then its pool and files (the seed's --action=remove_install)" })
export class CloudRemoveInstallCommand extends FollowingCommand {
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly handlers: InstallHandlersService,
  ) {
    super();
  }

  async run([install, server]: string[], options: WaitOptions): Promise<void> {
    const { jobId } = await this.handlers.remove(installId(install), serverId(server), by());
    await follow(this.dataSource, jobId, `install ${install} off server ${server}`, options);
  }
}

@Command({ name: 'cloud:drain', arguments: '<server>', description: 'drain a cloud server: out of every upstream (in-flight requests finish), waiting for every dispatcher' })
export class CloudDrainCommand extends FollowingCommand {
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly clouds: CloudServersService,
  ) {
    super();
  }

  async run([server]: string[], options: WaitOptions): Promise<void> {
    const { jobId } = await this.clouds.drain(serverId(server), by());
    await follow(this.dataSource, jobId, `drain of server ${server}`, options);
  }
}

@Command({ name: 'cloud:remove', arguments: '<server>', description: "remove a drained cloud server: every install taken off it, then the server (the seed's --action=remove)" })
export class CloudRemoveCommand extends FollowingCommand {
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly clouds: CloudServersService,
  ) {
    super();
  }

  async run([server]: string[], options: WaitOptions): Promise<void> {
    const { jobId, handlerJobs } = await this.clouds.remove(serverId(server), by());
    if (handlerJobs.length > 0) out(`server ${server}: ${handlerJobs.length} install(s) being taken off (jobs ${handlerJobs.join(', ')})`);
    await follow(this.dataSource, jobId, `removal of server ${server}`, options);
  }
}

@Command({ name: 'cloud:lease', arguments: '<server> [expires]', description: 'set or extend the lease of a cloud server (ISO 8601 time, e.g. 2030-01-31T18:00:00Z), or clear it with --clear' })
export class CloudLeaseCommand extends CommandRunner {
  constructor(private readonly clouds: CloudServersService) {
    super();
  }

  async run([server, expires]: string[], options: { clear?: boolean }): Promise<void> {
    if (options.clear === (expires !== undefined)) throw new SnippetError('give either the time the lease ends or --clear');
    let when: Date | null = null;
    if (expires !== undefined) {
      if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})$/.test(expires) || Number.isNaN(Date.parse(expires))) {
        throw new SnippetError('the lease end is an ISO 8601 time with its zone, e.g. 2030-01-31T18:00:00Z');
      }
      when = new Date(expires);
    }
    const { server: row } = await this.clouds.setLease(serverId(server), when, by());
    out(row.leaseExpiresAt ? `${row.hostname}: lease ends ${row.leaseExpiresAt.toISOString()} (operations are mailed 24 h before; drained then)` : `${row.hostname}: no lease`);
  }

  @Option({ flags: '--clear', description: 'no lease: the server stays until drained by hand' })
  parseClear(): boolean {
    return true;
  }
}
