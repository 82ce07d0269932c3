import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { Install } from '@app/catalog';
import { defineJobKind, JobHandler, QueueService, type JobContext } from '@app/queue';
import { InstallBuildSteps } from './build-steps.js';

export interface InstallConfigPayload {
  installId: number;
}

/**
 * Renders a live install's config files again on every server of the
 * install (its values changed: a certificate installed or removed turns a
 * site's scheme, a hostname changed). Resource key `install:<id>`: never
 * alongside the install's build or another operation on it.
 */
export const INSTALL_CONFIG = defineJobKind<InstallConfigPayload>('install.config', {
  maxAttempts: 5,
  backoff: { baseMs: 2_000, maxMs: 60_000 },
});

@Injectable()
export class InstallConfigJob {
  constructor(
    private readonly dataSource: DataSource,
    private readonly steps: InstallBuildSteps,
    private readonly queue: QueueService,
  ) {}

  /** Queues the re-render of an install's config files (inside the caller's transaction when given one). */
  async request(installId: number, manager = this.dataSource.manager): Promise<number> {
    const { job } = await this.queue.enqueue(INSTALL_CONFIG, { installId }, { manager, resourceKey: `install:${installId}` });
    return job.id;
  }

  @JobHandler(INSTALL_CONFIG)
  async run(payload: InstallConfigPayload, job: JobContext): Promise<void> {
    const install = await this.dataSource.getRepository(Install).findOneBy({ id: payload.installId });
    // An install still building renders its files with the values of its build's run; a removed one has none.
    if (!install || install.status !== 'live') {
      job.log(`install ${payload.installId} is ${install?.status ?? 'gone'}: nothing to render`);
      return;
    }
    const context = await this.steps.loadContext(install.id, job.jobId);
    const io = { log: (line: string) => job.log(line), signal: job.signal };
    for (const server of [context.master, ...context.replicas]) await this.steps.renderConfig(context, server, io);
  }
}
