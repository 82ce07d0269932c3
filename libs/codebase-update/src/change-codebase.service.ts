import { Injectable } from '@nestjs/common';
import { DataSource, In, type EntityManager } from 'typeorm';
import { AuditEventRepository, CodeUpdate, Install, Job, SharedCodeGroup, type AuditActor } from '@app/catalog';
import { NotFoundError, validateDto } from '@app/common';
import { QueueService } from '@app/queue';
import { changeCodebaseErrors as errors } from './change-codebase.errors.js';
import { INSTALL_CODEBASE_CHANGE } from './change-codebase.job.js';
import { HomeServers } from './home-servers.js';
import { ChangeCodebaseDto, ChangeCodebaseView } from './dto/change-codebase.dto.js';

/** The install's changes run one at a time, after its build (the build's and the handler jobs' resource key). */
const installResourceKey = (installId: number) => `install:${installId}`;
const OPEN_JOB = ['ready', 'blocked', 'running'] as const;

/**
 * Moves a live install to another code group of the same revision (issue
 * 16, the seed's "Change codebase"): checks everything a support person
 * would be told about (same revision, tier, room, lock, the release on the
 * install's servers), then queues the saga (ChangeCodebaseJob). The API
 * and the `install:codebase` snippet both come here.
 */
@Injectable()
export class ChangeCodebaseService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly queue: QueueService,
    private readonly audit: AuditEventRepository,
    private readonly homes: HomeServers,
  ) {}

  async change(installId: number, request: ChangeCodebaseDto, by: AuditActor): Promise<ChangeCodebaseView> {
    const dto = await validateDto(ChangeCodebaseDto, request);
    const m = this.dataSource.manager;
    const { install, from, to, revision } = await this.refusals(m, installId, dto.groupId);
    const servers = await this.homes.of(install);
    const down = servers.filter((s) => s.state === 'down');
    if (down.length > 0) throw errors.serverDown(install, down.map((s) => s.hostname));
    // Over SSH, before anything is queued: the one refusal the catalog cannot answer.
    const missing = await this.homes.missingRelease(servers, to, revision);
    if (missing.length > 0) throw errors.releaseMissing(to, revision, missing);
    const view = (jobId: number | null) =>
      Object.assign(new ChangeCodebaseView(), { installId, fromGroupId: from.id, toGroupId: to.id, revision, servers: servers.map((s) => s.hostname), jobId, dryRun: jobId === null });
    if (dto.dryRun) return view(null);

    const jobId = await this.dataSource.transaction(async (tx) => {
      // The install's row locked first (two requests for one install queue one change), then again what changed while the servers were asked.
      if (this.dataSource.options.type !== 'better-sqlite3') await tx.findOne(Install, { where: { id: installId }, lock: { mode: 'pessimistic_write' } });
      await this.refusals(tx, installId, dto.groupId);
      const { job } = await this.queue.enqueue(INSTALL_CODEBASE_CHANGE, { installId, fromGroupId: from.id, toGroupId: to.id }, { manager: tx, resourceKey: installResourceKey(installId) });
      return job.id;
    });
    this.queue.nudge();
    await this.audit.record({ ...by, action: 'install.codebase.change', targetType: 'install', targetId: installId, details: { fromGroupId: from.id, toGroupId: to.id, revision, jobId } });
    return view(jobId);
  }

  /** Every refusal the catalog answers, in the order a support person fixes them. */
  private async refusals(m: EntityManager, installId: number, groupId: number): Promise<{ install: Install; from: SharedCodeGroup; to: SharedCodeGroup; revision: string }> {
    const install = await m.findOneBy(Install, { id: installId });
    if (!install) throw new NotFoundError('install', installId);
    if (install.status !== 'live') throw errors.notLive(install);
    if (install.sharedCodeGroupId === null) throw errors.noGroup(install);
    const to = await m.findOneBy(SharedCodeGroup, { id: groupId });
    if (!to) throw new NotFoundError('code group', groupId);
    const from = await m.findOneByOrFail(SharedCodeGroup, { id: install.sharedCodeGroupId });
    if (to.id === from.id) throw errors.sameGroup(install, to);
    if (to.state !== 'ready' || !to.revision || !to.manifest) throw errors.groupNotReady(to);
    const revision = install.codeRevision ?? from.revision!;
    if (to.revision !== revision) throw errors.revisionDiffers(install, revision, to);
    if (to.tier !== install.license) throw errors.tierDiffers(install, to);
    if (to.locked) throw errors.locked(to);
    if (to.installCount >= to.installLimit) throw errors.full(to);
    for (const group of [from, to]) {
      const active = await m.findOne(CodeUpdate, { where: { groupId: group.id, kind: In(['rollout', 'rollback']), state: In(['planned', 'running']) } });
      if (active) throw errors.rolloutRunning(group, active.id);
    }
    const open = await m.findOne(Job, { where: { kind: INSTALL_CODEBASE_CHANGE.name, resourceKey: installResourceKey(installId), state: In([...OPEN_JOB]) } });
    if (open) throw errors.changeRunning(install, open.id);
    return { install, from, to, revision };
  }
}
