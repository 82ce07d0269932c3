import { Injectable } from '@nestjs/common';
import { DataSource, In } from 'typeorm';
import { AuditEventRepository, InstallServer } from '@app/catalog';
import { defineJobKind, JobHandler, QueueService, type JobContext } from '@app/queue';
import { SagaRunner, type SagaDefinition, type SagaStep } from '@app/saga';
import { NginxRebuilds } from '@app/webserver';
import { HandlerSteps, type HandlerContext } from './handler-steps.js';
import { TrafficService } from './traffic.service.js';

export interface HandlerJobPayload {
  installId: number;
  serverId: number;
}

/** Puts an install on one more handler (resource key `install:<id>`: never beside its build or another handler change). */
export const INSTALL_HANDLER_ADD = defineJobKind<HandlerJobPayload>('install.handler-add', {
  maxAttempts: 6,
  backoff: { baseMs: 2_000, maxMs: 60_000 },
});

export const INSTALL_HANDLER_ADD_SAGA = 'install-handler-add';

/**
 * The seed's `cloud_manager --action=add_install`: the install's user, the
 * database account for the handler's address, the shared code, the home and
 * its config files, crons, the pool, then traffic. Until the `activate`
 * step the row is `adding` (a pool, no traffic). Undone newest first; the
 * row is deleted once everything is.
 */
@Injectable()
export class HandlerAddJob {
  constructor(
    private readonly dataSource: DataSource,
    private readonly steps: HandlerSteps,
    private readonly traffic: TrafficService,
    private readonly rebuilds: NginxRebuilds,
    private readonly queue: QueueService,
    private readonly sagas: SagaRunner,
    private readonly audit: AuditEventRepository,
  ) {}

  @JobHandler(INSTALL_HANDLER_ADD)
  async run(payload: HandlerJobPayload, job: JobContext): Promise<void> {
    await this.sagas.run(this.definition(job.jobId), payload, job);
  }

  definition(jobId: number | null): SagaDefinition<HandlerContext, HandlerJobPayload> {
    const s = this.steps;
    const step = (name: string, execute: SagaStep<HandlerContext>['execute'], compensate: SagaStep<HandlerContext>['compensate']): SagaStep<HandlerContext> => ({ name, execute, compensate });
    return {
      name: INSTALL_HANDLER_ADD_SAGA,
      steps: [
        step('php-user', (c, io) => s.ensureUser(c, io), (c, io) => s.removeUser(c, io)),
        step('database-access', (c, io) => s.grantDatabase(c, io), (c, io) => s.revokeDatabase(c, io)),
        step('shared-code', (c, io) => s.syncSharedCode(c, io), async () => undefined),
        step('home', (c, io) => s.syncHome(c, io), (c, io) => s.removeHome(c, io)),
        step('crons', (c, io) => s.writeCrons(c, io), (c, io) => s.removeCrons(c, io)),
        step(
          'pools',
          async (c, io) => {
            if (!c.managed) return io.log(`${c.server.hostname} runs the shared pool the company manages (port 9000): no pool to build`);
            await this.traffic.awaitPool(c.install, c.server, io.log);
          },
          async (c, io) => {
            await s.setRowState(c, ['adding', 'active'], 'removing');
            if (c.managed) await this.traffic.awaitPoolGone(c.install, c.server, io.log);
          },
        ),
        step(
          'activate',
          async (c, io) => {
            await s.setRowState(c, ['adding'], 'active');
            io.log(`${c.server.hostname} takes traffic of ${c.install.fsName} from the next nginx rebuild`);
          },
          (c) => s.setRowState(c, ['adding', 'active'], 'removing'),
        ),
        step(
          'webserver',
          async (c, io) => this.traffic.awaitVhosts(await this.traffic.vhostsOf([c.install.id]), io.log, { request: true }),
          async (c, io) => {
            // Traffic leaves first: the row stops being a backend before its pool and files go.
            await s.setRowState(c, ['adding', 'active'], 'removing');
            await this.traffic.awaitVhosts(await this.traffic.vhostsOf([c.install.id]), io.log, { request: true });
          },
        ),
      ],
      loadContext: (payload) => this.steps.loadContext(payload.installId, payload.serverId, jobId),
      onCompleted: async ({ install, server }) => {
        await this.audit.record({ actor: `job:${jobId}`, via: 'worker', action: 'install.handler.added', targetType: 'install', targetId: install.id, details: { serverId: server.id, hostname: server.hostname } });
      },
      onCompensated: async ({ install, server }, failure) => {
        await this.dataSource.transaction(async (m) => {
          await m.delete(InstallServer, { installId: install.id, serverId: server.id, state: In(['adding', 'removing']) });
          await this.rebuilds.requestForInstall(install.id, m);
        });
        this.queue.nudge();
        await this.audit.record({ actor: `job:${jobId}`, via: 'worker', action: 'install.handler.add-failed', targetType: 'install', targetId: install.id, details: { serverId: server.id, failure: failure.slice(0, 500) } });
      },
    };
  }
}
