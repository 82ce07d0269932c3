import { Injectable } from '@nestjs/common';
import { defineJobKind, JobHandler, type JobContext } from '@app/queue';
import { SagaRunner, type SagaDefinition, type SagaStep } from '@app/saga';
import { RemovalContexts, type RemovalContext, type RemoveInstallPayload } from './removal-context.js';
import { RemovalRecordSteps, RemovalServing, RemoveInstallSteps } from './remove-install.steps.js';

/** An install removed (resource key `install:<id>`: never beside its build or another operation on it). */
export const INSTALL_REMOVE = defineJobKind<RemoveInstallPayload>('install.remove', {
  maxAttempts: 8,
  backoff: { baseMs: 2_000, maxMs: 60_000 },
});

export const INSTALL_REMOVE_SAGA = 'install-remove';

const NOTHING = async () => undefined;

/**
 * Issue 17's "Remove an install" as a saga:
 * 1. `offline`: the shop stops serving (its status is `removing`; nginx and
 *    php-fpm rebuilt without it, waited for).
 * 2. `backup`: home files, database dump, certificates, catalog rows (kept
 *    for BACKUP_GRACE_DAYS). A failure here undoes both: the shop serves again.
 * 3. from `crons` on (the pivot) nothing is undone: each step is idempotent
 *    and retried forward: crons, mounts, ftp, php (system users), copies,
 *    home, database, dns, release (IPs, names, group slot), certificates.
 * 4. `sweep`: every server checked; a leftover fails the step (retried).
 * Then the install is `removed` (its row kept with its history) and the
 * audit event holds the sweep.
 */
@Injectable()
export class RemoveInstallJob {
  constructor(
    private readonly steps: RemoveInstallSteps,
    private readonly serving: RemovalServing,
    private readonly records: RemovalRecordSteps,
    private readonly contexts: RemovalContexts,
    private readonly sagas: SagaRunner,
  ) {}

  @JobHandler(INSTALL_REMOVE)
  async run(payload: RemoveInstallPayload, job: JobContext): Promise<void> {
    await this.sagas.run(this.definition(job.jobId), payload, job);
  }

  definition(jobId: number | null): SagaDefinition<RemovalContext, RemoveInstallPayload> {
    const s = this.steps;
    const r = this.records;
    const step = (name: string, execute: SagaStep<RemovalContext>['execute'], compensate: SagaStep<RemovalContext>['compensate'] = NOTHING): SagaStep<RemovalContext> => ({ name, execute, compensate });
    return {
      name: INSTALL_REMOVE_SAGA,
      steps: [
        step('offline', (c, io) => this.serving.offline(c, io), (c, io) => this.serving.online(c, io)),
        step('backup', (c, io) => r.backup(c, io), (c, io) => r.dropBackup(c, io)),
        step('crons', (c, io) => s.crons(c, io)),
        step('mounts', (c, io) => s.mounts(c, io)),
        step('ftp', (c, io) => s.ftp(c, io)),
        step('php', (c, io) => s.php(c, io)),
        step('copies', (c, io) => s.copies(c, io)),
        step('home', (c, io) => s.home(c, io)),
        step('database', (c, io) => s.database(c, io)),
        step('dns', (c, io) => s.unpublish(c, io)),
        step('release', (c, io) => s.release(c, io)),
        step('certificates', (c, io) => r.certificates(c, io)),
        step('sweep', (c, io) => r.sweep(c, io)),
      ],
      pivot: 'crons',
      loadContext: (payload) => this.contexts.load(payload, jobId),
      onCompleted: (c) => r.completed(c),
      onCompensated: (c, failure) => r.undone(c, failure),
    };
  }
}
