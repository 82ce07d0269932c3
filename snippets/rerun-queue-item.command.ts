import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Inject } from '@nestjs/common';
import { Command, CommandRunner, Option } from 'nest-commander';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { JobsAdminService } from '@app/queue';
import { jobId } from './jobs.command.js';
import { out, SnippetError } from './cli-output.js';
import { followJob } from './follow-job.js';
import { cliActor } from './token-create.command.js';

const FINISHED = ['done', 'dead', 'cancelled'];

/**
 * The seed's rerun_queue.php, without editing a file: runs a queue item again
 * and streams its output live to the terminal and to a log file. A worker
 * (an engine with the worker role) does the work; this follows it.
 */
@Command({
  name: 'rerun-queue-item',
  arguments: '<id>',
  description: 'run a queue job again and stream its output (also to a log file); exit 1 if it fails',
})
export class RerunQueueItemCommand extends CommandRunner {
  constructor(
    private readonly jobs: JobsAdminService,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
  ) {
    super();
  }

  async run([idText]: string[], options: { logFile?: string; follow?: boolean; timeout?: number }): Promise<void> {
    const id = jobId(idText);
    let job = await this.jobs.get(id);
    const logFile = options.logFile ?? join(this.config.varDir, 'log', `rerun-queue-item-${id}-${Date.now()}.log`);
    mkdirSync(join(logFile, '..'), { recursive: true });
    const emit = (text: string) => {
      out(text);
      appendFileSync(logFile, text + '\n');
    };

    if (FINISHED.includes(job.state) && !options.follow) {
      job = await this.jobs.retry(id, { actor: cliActor(), via: 'cli' });
      emit(`job ${id} (${job.kind}) queued again; output follows (also in ${logFile})`);
    } else {
      emit(`job ${id} (${job.kind}) is ${job.state}; following its output (also in ${logFile})`);
    }

    await followJob(this.jobs, id, { timeoutS: options.timeout, logFile, attempts: true }, emit);
  }

  @Option({ flags: '--log-file <path>', description: 'where to write the output too (default var/log/...)' })
  parseLogFile(value: string): string {
    if (value.includes('\0')) throw new SnippetError('--log-file is a path');
    return value;
  }

  @Option({ flags: '--follow', description: 'only follow the job, do not run it again' })
  parseFollow(): boolean {
    return true;
  }

  @Option({ flags: '--timeout <seconds>', description: 'stop following after this long (the job goes on)' })
  parseTimeout(value: string): number {
    if (!/^\d{1,6}$/.test(value)) throw new SnippetError('--timeout is a number of seconds');
    return Number(value);
  }
}
