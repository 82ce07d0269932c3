import { Inject, Injectable, Optional } from '@nestjs/common';
import { Metrics } from '@app/metrics';
import { DataSource, In, Not } from 'typeorm';
import { Install, InstallServer, InstallSite, InstallSiteIp, Server, SharedCodeGroup, SiteName } from '@app/catalog';
import { redactSecrets } from '@app/common';
import { defineJobKind, JobHandler, type JobContext } from '@app/queue';
import { SagaRunner, type SagaDefinition } from '@app/saga';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { managesPhp, NginxRebuilds, PoolRebuilds } from '@app/webserver';
import type { BuildContext } from './build-context.js';
import { InstallBuildSteps } from './build-steps.js';

export interface InstallBuildPayload {
  installId: number;
}

/** An install's build: the saga of SPEC.md, one job per install (resource key `install:<id>`). */
export const INSTALL_BUILD = defineJobKind<InstallBuildPayload>('install.build', {
  maxAttempts: 8,
  backoff: { baseMs: 2_000, maxMs: 60_000 },
});

export const INSTALL_BUILD_SAGA = 'install-build';

@Injectable()
export class InstallBuildJob {
  constructor(
    private readonly dataSource: DataSource,
    private readonly steps: InstallBuildSteps,
    private readonly sagas: SagaRunner,
    private readonly rebuilds: NginxRebuilds,
    private readonly pools: PoolRebuilds,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
    @Optional() private readonly metrics?: Metrics,
  ) {}

  @JobHandler(INSTALL_BUILD)
  async run(payload: InstallBuildPayload, job: JobContext): Promise<void> {
    await this.sagas.run(this.definition(job.jobId), payload, job);
  }

  definition(jobId: number | null): SagaDefinition<BuildContext, InstallBuildPayload> {
    return {
      name: INSTALL_BUILD_SAGA,
      steps: this.steps.steps(),
      pivot: 'mail',
      loadContext: (payload) => this.steps.loadContext(payload.installId, jobId),
      onCompleted: async ({ install }) => {
        const changed = await this.dataSource.getRepository(Install).update({ id: install.id, status: Not('live') }, { status: 'live', statusReason: null });
        // Once per install: a resumed run that finds it live already does not count it again.
        if ((changed.affected ?? 0) > 0) this.metrics?.orderToLive.observe((Date.now() - install.createdAt.getTime()) / 1000);
      },
      onCompensated: (context, failure) => this.release(context.install.id, failure),
    };
  }

  /**
   * The install failed and every step was undone: it gives its hostnames,
   * IPs and code group slot back, once (a repeat after a crash changes
   * nothing), and keeps its row with the reason. Its dispatchers and the
   * handlers running its PHP are rebuilt without it (in the same
   * transaction: no failed install is left with a vhost or a pool and no
   * rebuild queued).
   */
  async release(installId: number, failure: string): Promise<void> {
    await this.dataSource.transaction(async (m) => {
      const marked = await m.update(Install, { id: installId, status: Not(In(['failed', 'removed'])) }, { status: 'failed', statusReason: redactSecrets(failure).slice(0, 1024) });
      if ((marked.affected ?? 0) === 0) return;
      await this.rebuilds.requestForInstall(installId, m);
      const rows = await m.find(InstallServer, { where: { installId } });
      const handlers = rows.length ? await m.find(Server, { where: { id: In(rows.map((r) => r.serverId)) } }) : [];
      await this.pools.request(handlers.filter((s) => managesPhp(s, this.config)).map((s) => s.id), m);
      const install = await m.findOneByOrFail(Install, { id: installId });
      const sites = await m.find(InstallSite, { where: { installId } });
      if (sites.length > 0) await m.delete(InstallSiteIp, { installSiteId: In(sites.map((s) => s.id)) });
      await m.delete(SiteName, { installId });
      if (install.sharedCodeGroupId !== null) {
        await m
          .createQueryBuilder()
          .update(SharedCodeGroup)
          .set({ installCount: () => 'install_count - 1' })
          .where('id = :id AND install_count > 0', { id: install.sharedCodeGroupId })
          .execute();
      }
    });
  }
}
