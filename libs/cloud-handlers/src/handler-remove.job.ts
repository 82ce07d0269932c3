import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { AuditEventRepository, InstallServer } from '@app/catalog';
import { defineJobKind, JobHandler, QueueService, type JobContext } from '@app/queue';
import { SagaRunner, type SagaDefinition, type SagaStep } from '@app/saga';
import { NginxRebuilds } from '@app/webserver';
import type { HandlerJobPayload } from './handler-add.job.js';
import { HandlerSteps, type HandlerContext } from './handler-steps.js';
import { TrafficService } from './traffic.service.js';

/** Takes an install off a handler (resource key `install:<id>`). */
export const INSTALL_HANDLER_REMOVE = defineJobKind<HandlerJobPayload>('install.handler-remove', {
  maxAttempts: 8,
  backoff: { baseMs: 2_000, maxMs: 60_000 },
});

export const INSTALL_HANDLER_REMOVE_SAGA = 'install-handler-remove';

/**
 * The seed's `cloud_manager --action=remove_install`, in the order that
 * loses no request: the row is `removing` (set with the request), so the
 * dispatchers' next nginx takes it out of every upstream; then its pool,
 * crons, home, database account and user go. Forward only (the first step
 * is the pivot): a removal half done is finished, never undone.
 */
@Injectable()
export class HandlerRemoveJob {
  constructor(
    private readonly dataSource: DataSource,
    private readonly steps: HandlerSteps,
    private readonly traffic: TrafficService,
    private readonly rebuilds: NginxRebuilds,
    private readonly queue: QueueService,
    private readonly sagas: SagaRunner,
    private readonly audit: AuditEventRepository,
  ) {}

  @JobHandler(INSTALL_HANDLER_REMOVE)
  async run(payload: HandlerJobPayload, job: JobContext): Promise<void> {
    await this.sagas.run(this.definition(job.jobId), payload, job);
  }

  definition(jobId: number | null): SagaDefinition<HandlerContext, HandlerJobPayload> {
    const s = this.steps;
    const forward = (name: string, execute: SagaStep<HandlerContext>['execute']): SagaStep<HandlerContext> => ({ name, execute, compensate: async () => undefined });
    return {
      name: INSTALL_HANDLER_REMOVE_SAGA,
      pivot: 'traffic',
      steps: [
        forward('traffic', async (c, io) => {
          await s.setRowState(c, ['adding', 'active'], 'removing');
          await this.traffic.awaitVhosts(await this.traffic.vhostsOf([c.install.id]), io.log, { request: true });
        }),
        forward('pools', async (c, io) => {
          if (c.managed) await this.traffic.awaitPoolGone(c.install, c.server, io.log);
        }),
        forward('crons', (c, io) => s.removeCrons(c, io)),
        forward('home', (c, io) => s.removeHome(c, io)),
        forward('database-access', (c, io) => s.revokeDatabase(c, io)),
        forward('php-user', (c, io) => s.removeUser(c, io)),
      ],
      loadContext: (payload) => this.steps.loadContext(payload.installId, payload.serverId, jobId),
      onCompleted: async ({ install, server }) => {
        await this.dataSource.transaction(async (m) => {
          await m.delete(InstallServer, { installId: install.id, serverId: server.id, state: 'removing' });
          // The dispatchers drop the row from their input too (their upstreams already left it out: the row was `removing`).
          await this.rebuilds.requestForInstall(install.id, m);
        });
        this.queue.nudge();
        await this.audit.record({ actor: `job:${jobId}`, via: 'worker', action: 'install.handler.removed', targetType: 'install', targetId: install.id, details: { serverId: server.id, hostname: server.hostname } });
      },
    };
  }
}
