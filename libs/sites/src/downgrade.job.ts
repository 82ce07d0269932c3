import { Injectable } from '@nestjs/common';
import { AuditEventRepository } from '@app/catalog';
import { ChangeCodebaseSteps } from '@app/codebase-update';
import { JobHandler, type JobContext } from '@app/queue';
import { SagaRunner, type SagaDefinition } from '@app/saga';
import { DowngradeSteps } from './downgrade.steps.js';
import { SiteEffects } from './site-effects.js';
import { INSTALL_DOWNGRADE } from './site-job-kinds.js';
import type { DowngradePayload } from './site-payloads.js';
import { operationContext, sagaStep, type OperationContext } from './site-saga.js';

export const INSTALL_DOWNGRADE_SAGA = 'install-downgrade';

type Context = OperationContext<DowngradePayload>;

/**
 * The seed's "Downgrade paid to free" as one saga; nothing is left half
 * done: every step before the pivot is undone newest first.
 * 1. `check`: live, paid, the free group's release on the master.
 * 2. `serving`: the install served by its master alone: the other
 *    servers' install_servers rows and every IP but one per site on the
 *    master given back; rebuilds of nginx (every dispatcher) and PHP pools
 *    asked for. Undone: the rows and IPs back, vhosts and DNS following.
 * 3. `vhosts`: the master's nginx serves the kept IPs only; the others'
 *    nginx no longer has the install.
 * 4. `license`: free (the config files render it). Undone: paid.
 * 5-7. `config`, `slot`, `switch`: the codebase change's own steps
 *    (ChangeCodebaseSteps) onto the free group, on the master.
 * 8. `ftp`: bind mounts (startup_mounts rows) removed and unmounted, the
 *    FTP account disabled (never renamed). Undone: rows and flag back.
 * 9. `dns`: every name to the master's IP only.
 * 10. `webserver`, 11. `probe`: the master serves every site.
 * 12. `copies` (the pivot: retried forward, never undone): on every other
 *    server, the home (only when this install's marker is in it), the
 *    cron file and the PHP account removed.
 */
@Injectable()
export class DowngradeJob {
  constructor(
    private readonly steps: DowngradeSteps,
    private readonly effects: SiteEffects,
    private readonly codebase: ChangeCodebaseSteps,
    private readonly sagas: SagaRunner,
    private readonly audit: AuditEventRepository,
  ) {}

  @JobHandler(INSTALL_DOWNGRADE)
  async run(payload: DowngradePayload, job: JobContext): Promise<void> {
    await this.sagas.run(this.definition(job.jobId), payload, job);
  }

  definition(jobId: number): SagaDefinition<Context, DowngradePayload> {
    const e = this.effects;
    const s = this.codebase;
    const d = this.steps;
    const none = async () => undefined;
    const details = (p: DowngradePayload) => ({
      requestedBy: p.requestedBy,
      jobId,
      before: { license: 'paid', groupId: p.fromGroupId, servers: p.replicas.map((r) => r.serverId), releasedIps: p.releasedIps.map((r) => r.serverIpId), ftpEnabled: p.ftpEnabled, mounts: p.mounts.length },
      after: { license: 'free', groupId: p.toGroupId, servers: [], releasedIps: [], ftpEnabled: p.ftpEnabled === null ? null : false, mounts: 0 },
    });
    return {
      name: INSTALL_DOWNGRADE_SAGA,
      pivot: 'copies',
      steps: [
        sagaStep('check', async (c, io) => s.checkRelease(await d.codebaseContext(c), io), none),
        sagaStep('serving', (c, io) => d.masterOnly(c.payload, io), (c, io) => d.servingBack(c, io)),
        sagaStep('vhosts', async (c, io) => {
          await e.awaitVhosts(await e.context(c.payload.installId, jobId), io);
          await e.awaitVhostGone(await d.install(c.payload), await d.formerServers(c.payload), io);
        }, none),
        sagaStep('license', (c, io) => d.license(c, 'free', io), (c, io) => d.license(c, 'paid', io)),
        sagaStep('config', async (c, io) => {
          const cc = await d.codebaseContext(c);
          await s.prepareFiles(cc.to, cc.servers, io, { tree: true });
        }, async (c, io) => {
          const cc = await d.codebaseContext(c);
          await s.prepareFiles(cc.from, cc.servers, io, { tree: false });
        }),
        sagaStep('slot', async (c, io) => s.moveSlot(await d.codebaseContext(c), io), async (c, io) => s.slotBack(await d.codebaseContext(c), io)),
        sagaStep('switch', async (c, io) => {
          const cc = await d.codebaseContext(c);
          await s.followPools(cc.to, cc.servers, io);
        }, none),
        sagaStep('ftp', (c, io) => d.ftpOff(c.payload, io), (c, io) => d.ftpBack(c.payload, io)),
        sagaStep('dns', async ({ payload: p }, io) => void (await e.publish(p.installId, io)), none),
        sagaStep('webserver', async ({ payload: p }, io) => e.awaitVhosts(await e.context(p.installId, jobId), io), none),
        sagaStep('probe', async ({ payload: p }, io) => e.probeInstall(p.installId, io), none),
        sagaStep('copies', (c, io) => d.removeCopies(c.payload, io), none),
      ],
      loadContext: async (payload) => operationContext(payload, jobId),
      onCompleted: async ({ payload: p }) => {
        await this.audit.record({ actor: `job:${jobId}`, via: 'worker', action: 'install.downgraded', targetType: 'install', targetId: p.installId, details: details(p) });
      },
      onCompensated: async ({ payload: p }, failure) => {
        const d = details(p);
        await this.audit.record({ actor: `job:${jobId}`, via: 'worker', action: 'install.downgrade-failed', targetType: 'install', targetId: p.installId, details: { ...d, after: d.before, failure: failure.slice(0, 500) } });
      },
    };
  }
}
