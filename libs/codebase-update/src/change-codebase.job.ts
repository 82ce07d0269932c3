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

/** Undone by the slot's compensation, which puts the links back only as each pool follows the catalog back (see `switch`). */
const UNDONE_BY_SLOT = async () => undefined;

/**
 * The seed's "Change codebase" as a saga: every link of the home goes
 * through `<home>/.code`, so moving the install to another group of the
 * same revision is one atomic rename of that link per server, with the
 * slot moved in the catalog and PHP and nginx following it.
 *
 * 1. `release`: every server of the home is up and holds the target
 *    group's release.
 * 2. `config`: on every server, what the target's manifest adds to the tree
 *    and the config files rendered with it (`.code` untouched: same
 *    revision). Undone by rendering them from the old group again.
 * 3. `slot`: one transaction: a slot taken in the new group (only while it
 *    is ready, unlocked and has room), given back in the old, the install's
 *    row, its pool and nginx rebuilds queued.
 * 4. `switch`: on each server, as soon as php-fpm runs the install's pool
 *    with the new group's directory in its open_basedir, `.code` renamed
 *    onto the new group's release (PHP refuses a real path outside
 *    open_basedir: link and pool must change together; the gap is the time
 *    from a reload being recorded to the rename).
 * 5. `webserver`: each dispatcher's nginx has the install's vhost as the
 *    catalog has it now (rebuilt only when it differs: web rules of the
 *    other group's manifest).
 * 6. `probe`: every site answers through every dispatcher.
 * A failure undoes newest first; the slot's compensation moves the slot
 * back and re-points each server's link as its pool follows, so `switch`
 * and `webserver` have nothing of their own to undo.
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
        step('config', (c, io) => s.prepareFiles(c.to, c.servers, io, { tree: true }), (c, io) => s.prepareFiles(c.from, c.servers, io, { tree: false })),
        step('slot', (c, io) => s.moveSlot(c, io), (c, io) => s.slotBack(c, io)),
        step('switch', (c, io) => s.followPools(c.to, c.servers, io), UNDONE_BY_SLOT),
        step('webserver', (c, io) => this.builds.webServer().execute(c.to, io), UNDONE_BY_SLOT),
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
