import { Injectable } from '@nestjs/common';
import { AuditEventRepository } from '@app/catalog';
import { defineJobKind, JobHandler, type JobContext } from '@app/queue';
import { SagaRunner, type SagaDefinition, type SagaStep } from '@app/saga';
import { InstallBuildSteps } from '@app/installs';
import { ChangeCodebaseSteps, type ChangeCodebaseContext, type ChangeCodebasePayload } from './change-codebase.steps.js';

/** An install moved to another code group of the same revision (resource key `install:<id>`: never beside its build or a handler change). */
export const INSTALL_CODEBASE_CHANGE = defineJobKind<ChangeCodebasePayload>('install.codebase-change', {
  maxAttempts: 6,
  backoff: { baseMs: 2_000, maxMs: 60_000 },
});

export const INSTALL_CODEBASE_CHANGE_SAGA = 'install-codebase-change';

/** Undone by the switch's compensation, which runs after the catalog is back (see `switch`). */
const UNDONE_BY_SWITCH = async () => undefined;

/**
 * The seed's "Change codebase" as a saga: every link of the home goes
 * through `<home>/.code`, so moving the install to another group of the
 * same revision is one atomic rename of that link per server, with the
 * slot moved in the catalog and PHP and nginx following it.
 *
 * 1. `release`: every server of the home is up and holds the target
 *    group's release.
 * 2. `switch`: on every server, what the target's manifest adds to the tree,
 *    the config files rendered with it, `.code` renamed onto its release;
 *    then the slot in one transaction (taken in the new group while it has
 *    room and is unlocked, given back in the old, the install's row, the
 *    pool and nginx rebuilds queued). Links before the catalog, both ways:
 *    php-fpm's realpath cache keeps the release a worker resolved, so a pool
 *    reloaded for the new group must only ever see the new link (and a pool
 *    reloaded back for the old group the old link).
 * 3. `pools`: php-fpm runs the install's pool with the new group's
 *    directory in its open_basedir on every managed handler of the home.
 * 4. `webserver`: each dispatcher's nginx has the install's vhost as the
 *    catalog has it now (rebuilt only when it differs: web rules of the
 *    other group's manifest).
 * 5. `probe`: every site answers through every dispatcher.
 * A failure undoes newest first; the switch's compensation points the links
 * back, moves the slot back, and waits for the pools and vhosts of the old
 * group, so steps 3-4 have nothing of their own to undo.
 */
@Injectable()
export class ChangeCodebaseJob {
  constructor(
    private readonly steps: ChangeCodebaseSteps,
    private readonly builds: InstallBuildSteps,
    private readonly sagas: SagaRunner,
    private readonly audit: AuditEventRepository,
  ) {}

  @JobHandler(INSTALL_CODEBASE_CHANGE)
  async run(payload: ChangeCodebasePayload, job: JobContext): Promise<void> {
    await this.sagas.run(this.definition(job.jobId), payload, job);
  }

  definition(jobId: number | null): SagaDefinition<ChangeCodebaseContext, ChangeCodebasePayload> {
    const s = this.steps;
    const step = (name: string, execute: SagaStep<ChangeCodebaseContext>['execute'], compensate: SagaStep<ChangeCodebaseContext>['compensate']): SagaStep<ChangeCodebaseContext> => ({ name, execute, compensate });
    const details = ({ from, to }: ChangeCodebaseContext) => ({ fromGroupId: from.group.id, toGroupId: to.group.id, revision: to.revision, jobId });
    return {
      name: INSTALL_CODEBASE_CHANGE_SAGA,
      steps: [
        step('release', (c, io) => s.checkRelease(c, io), async () => undefined),
        step(
          'switch',
          async (c, io) => {
            await s.pointTo(c.to, c.servers, io);
            await s.moveSlot(c, io);
          },
          (c, io) => s.switchBack(c, io),
        ),
        step('pools', (c, io) => s.awaitPools(c.to, c.servers, io), UNDONE_BY_SWITCH),
        step('webserver', (c, io) => this.builds.webServer().execute(c.to, io), UNDONE_BY_SWITCH),
        step('probe', (c, io) => this.builds.probeSites().execute(c.to, io), async () => undefined),
      ],
      loadContext: (payload) => s.loadContext(payload, jobId),
      onCompleted: async (c) => {
        await this.audit.record({ actor: `job:${jobId}`, via: 'worker', action: 'install.codebase.changed', targetType: 'install', targetId: c.to.install.id, details: details(c) });
      },
      onCompensated: async (c, failure) => {
        await this.audit.record({ actor: `job:${jobId}`, via: 'worker', action: 'install.codebase.change-failed', targetType: 'install', targetId: c.to.install.id, details: { ...details(c), failure: failure.slice(0, 500) } });
      },
    };
  }
}
