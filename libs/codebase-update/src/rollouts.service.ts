import { Injectable } from '@nestjs/common';
import { DataSource, In, type EntityManager } from 'typeorm';
import { AuditEventRepository, CodeRelease, CodeUpdate, CodeUpdateItem, DatabaseUpdate, Install, Server, SharedCodeGroup, type AuditActor } from '@app/catalog';
import { CodeReleases, MANIFEST_FILE, parseManifest, ReleaseRefused, type CodebaseManifest } from '@app/codebases';
import { DomainError, NotFoundError, validateDto } from '@app/common';
import { QueueService } from '@app/queue';
import { DEFAULT_ROLLOUT_CONCURRENCY, RollbackDto, RolloutPlanInstall, RolloutPlanView, RolloutQueuedView, RolloutReportView, StartRolloutDto, TreeChangesView } from './dto/rollout.dto.js';
import { CODE_UPDATE_ROLLOUT, codeGroupResourceKey } from './rollout.job.js';

const ACTIVE = ['planned', 'running'] as const;
/** A rollback switches links only: many at once. */
const ROLLBACK_CONCURRENCY = 16;

export const rolloutErrors = {
  groupNotReady: (group: SharedCodeGroup) => new DomainError('CODE_GROUP_NOT_READY', `code group ${group.name} is ${group.state}: only a ready group is rolled`, 409, { groupId: group.id, state: group.state }),
  running: (group: SharedCodeGroup, updateId: number) =>
    new DomainError('ROLLOUT_RUNNING', `code group ${group.name} has update ${updateId} in progress: one at a time (follow it, or wait for it to end)`, 409, { groupId: group.id, updateId }),
  noLiveInstalls: (group: SharedCodeGroup) => new DomainError('NO_LIVE_INSTALLS', `code group ${group.name} has no live install to update`, 409, { groupId: group.id }),
  badCanary: (group: SharedCodeGroup, installId: number) =>
    new DomainError('CANARY_NOT_IN_GROUP', `install ${installId} is not a live install of code group ${group.name}: the canary must be one`, 400, { groupId: group.id, installId }),
  sameRevision: (group: SharedCodeGroup, commit: string) => new DomainError('ALREADY_AT_REVISION', `code group ${group.name} is at ${commit} already`, 409, { groupId: group.id, commit }),
  refused: (message: string) => new DomainError('REVISION_REFUSED', message, 409),
  nothingToRetry: (updateId: number, state: string) => new DomainError('NOTHING_TO_RETRY', `update ${updateId} is ${state}: only a failed rollout has installs to retry`, 409, { updateId, state }),
  noWayBack: (group: SharedCodeGroup, why: string) => new DomainError('NO_ROLLBACK', `code group ${group.name} cannot be rolled back: ${why}`, 409, { groupId: group.id }),
};

/**
 * The codebase-update module's rollouts (issue 16): a code group rolled to a
 * revision (canary first, then the others, each install switched atomically
 * and its SQL updates run), a failed rollout's installs retried, a group
 * rolled back to the release before, and the report. The API and the
 * `codegroup:update` / `codegroup:rollback` snippets both come here.
 */
@Injectable()
export class RolloutsService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly queue: QueueService,
    private readonly audit: AuditEventRepository,
    private readonly releases: CodeReleases,
  ) {}

  /** Queues a rollout of the group's live installs to `revision`, or answers its plan (dryRun: the revision fetched on the master, nothing else touched). */
  async start(groupId: number, request: StartRolloutDto, by: AuditActor): Promise<RolloutQueuedView | RolloutPlanView> {
    const dto = await validateDto(StartRolloutDto, request);
    const group = await this.readyGroup(groupId);
    const concurrency = dto.concurrency ?? DEFAULT_ROLLOUT_CONCURRENCY;
    if (dto.dryRun) return this.plan(group, dto, concurrency);

    const result = await this.dataSource.transaction(async (m) => {
      const locked = await this.lockGroup(m, groupId);
      await this.refuseActive(m, locked);
      const installs = await this.liveInstalls(m, locked);
      const canary = this.canaryOf(locked, installs, dto.canaryInstallId);
      return this.queueUpdate(m, locked, 'rollout', dto.revision, installs, canary, concurrency, by);
    });
    this.queue.nudge();
    await this.audit.record({ ...by, action: 'codegroup.rollout', targetType: 'code-group', targetId: groupId, details: { revision: dto.revision, updateId: result.updateId, canary: result.canaryInstallId, installs: result.installIds.length, concurrency } });
    return result;
  }

  /** Queues the failed installs of a failed rollout again (a fix landed): the canary is behind it, they follow at the rollout's concurrency. */
  async retryFailed(groupId: number, updateId: number, by: AuditActor): Promise<RolloutQueuedView> {
    const result = await this.dataSource.transaction(async (m) => {
      const group = await this.lockGroup(m, groupId);
      const update = await m.findOneBy(CodeUpdate, { id: updateId, groupId });
      if (!update || update.kind === 'sql-snippet') throw new NotFoundError('update', updateId);
      if (update.state !== 'failed' || update.kind !== 'rollout') throw rolloutErrors.nothingToRetry(updateId, update.state);
      await this.refuseActive(m, group);
      const failed = await m.find(CodeUpdateItem, { where: { updateId, state: 'failed' } });
      const { job } = await this.queue.enqueue(CODE_UPDATE_ROLLOUT, { updateId }, { manager: m, resourceKey: codeGroupResourceKey(groupId) });
      await m.update(CodeUpdate, { id: updateId }, { state: 'running', jobId: job.id, finishedAt: null, error: null });
      await m.update(
        CodeUpdateItem,
        { id: In(failed.map((i) => i.id)) },
        { state: 'pending', jobId: null, error: null, errorFile: null, errorLine: null, errorStatement: null, probe: null, startedAt: null, finishedAt: null },
      );
      return Object.assign(new RolloutQueuedView(), { updateId, jobId: job.id, kind: 'rollout', canaryInstallId: update.canaryInstallId, installIds: failed.map((i) => i.installId) });
    });
    this.queue.nudge();
    await this.audit.record({ ...by, action: 'codegroup.rollout.retry', targetType: 'code-group', targetId: groupId, details: { updateId, installs: result.installIds } });
    return result;
  }

  /**
   * Rolls the group back to the release it was on before its last rollout
   * (still on every server: instant, links switched back, configs rendered
   * from it). SQL updates the rollout applied stay applied.
   */
  async rollback(groupId: number, request: RollbackDto, by: AuditActor): Promise<RolloutQueuedView | RolloutPlanView> {
    const dto = await validateDto(RollbackDto, request);
    const group = await this.readyGroup(groupId);
    const target = await this.rollbackTarget(this.dataSource.manager, group);
    if (dto.dryRun) {
      const installs = await this.liveInstalls(this.dataSource.manager, group);
      return Object.assign(new RolloutPlanView(), {
        dryRun: true as const, kind: 'rollback', groupId, fromRevision: group.revision!, toRevision: target, canaryInstallId: null, concurrency: ROLLBACK_CONCURRENCY,
        treeChanges: Object.assign(new TreeChangesView(), { copies: [], writable: [], templates: [], secrets: [], links: [] }),
        installs: installs.map((i) => Object.assign(new RolloutPlanInstall(), { installId: i.id, fsName: i.fsName, canary: false, revision: i.codeRevision ?? group.revision!, sqlFiles: [] })),
      });
    }
    const result = await this.dataSource.transaction(async (m) => {
      const locked = await this.lockGroup(m, groupId);
      await this.refuseActive(m, locked);
      const installs = await this.liveInstalls(m, locked);
      return this.queueUpdate(m, locked, 'rollback', await this.rollbackTarget(m, locked), installs, null, ROLLBACK_CONCURRENCY, by);
    });
    this.queue.nudge();
    await this.audit.record({ ...by, action: 'codegroup.rollback', targetType: 'code-group', targetId: groupId, details: { from: group.revision, to: target, updateId: result.updateId, installs: result.installIds.length } });
    return result;
  }

  async report(groupId: number, updateId: number): Promise<RolloutReportView> {
    const update = await this.dataSource.getRepository(CodeUpdate).findOneBy({ id: updateId, groupId, kind: In(['rollout', 'rollback']) });
    if (!update) throw new NotFoundError('update', updateId);
    const items = await this.dataSource.getRepository(CodeUpdateItem).find({ where: { updateId }, order: { canary: 'DESC', installId: 'ASC' } });
    return RolloutReportView.of(update, items);
  }

  /** The group's rollouts and rollbacks, newest first (without their items). */
  async list(groupId: number): Promise<RolloutReportView[]> {
    if (!(await this.dataSource.getRepository(SharedCodeGroup).existsBy({ id: groupId }))) throw new NotFoundError('code group', groupId);
    const updates = await this.dataSource.getRepository(CodeUpdate).find({ where: { groupId, kind: In(['rollout', 'rollback']) }, order: { id: 'DESC' }, take: 100 });
    const counts = updates.length
      ? await this.dataSource
          .getRepository(CodeUpdateItem)
          .createQueryBuilder('i')
          .select(['i.updateId AS updateId', 'i.state AS state', 'COUNT(*) AS n'])
          .where('i.updateId IN (:...ids)', { ids: updates.map((u) => u.id) })
          .groupBy('i.updateId')
          .addGroupBy('i.state')
          .getRawMany<{ updateId: number; state: string; n: string }>()
      : [];
    return updates.map((u) => {
      const view = RolloutReportView.of(u, []);
      for (const row of counts.filter((c) => Number(c.updateId) === u.id)) {
        view.counts[row.state] = Number(row.n);
        view.counts.total! += Number(row.n);
      }
      return view;
    });
  }

  private async plan(group: SharedCodeGroup, dto: StartRolloutDto, concurrency: number): Promise<RolloutPlanView> {
    const master = await this.dataSource.getRepository(Server).findOneByOrFail({ id: group.masterServerId });
    const access = this.releases.repoAccess(group);
    let commit: string;
    try {
      commit = await this.releases.resolve(group, master, dto.revision, { fetch: true, log: () => undefined });
    } catch (e) {
      if (e instanceof ReleaseRefused) throw rolloutErrors.refused(access.redact(e.message));
      throw e;
    }
    if (commit === group.revision) throw rolloutErrors.sameRevision(group, commit);
    const current = await parseManifest(group.manifest);
    const file = await this.releases.fileAt(group, master, commit, MANIFEST_FILE);
    let next: CodebaseManifest;
    try {
      next = file === null ? current : await parseManifest(JSON.parse(file));
    } catch (e) {
      throw rolloutErrors.refused(`the manifest at ${commit} is invalid: ${(e as Error).message}`);
    }
    const sqlFiles = next.sql ? (await this.releases.filesAt(group, master, commit, next.sql.updates)).filter((f) => f.endsWith('.sql')).sort((a, b) => a.localeCompare(b, 'en', { numeric: true })) : [];
    const installs = await this.liveInstalls(this.dataSource.manager, group);
    const canary = this.canaryOf(group, installs, dto.canaryInstallId);
    const applied = await this.dataSource.getRepository(DatabaseUpdate).find({ where: { installId: In(installs.length ? installs.map((i) => i.id) : [0]) } });
    const added = (a: string[], b: string[]) => b.filter((x) => !a.includes(x));
    return Object.assign(new RolloutPlanView(), {
      dryRun: true as const,
      kind: 'rollout',
      groupId: group.id,
      fromRevision: group.revision!,
      toRevision: commit,
      canaryInstallId: canary,
      concurrency,
      treeChanges: Object.assign(new TreeChangesView(), {
        copies: added(current.copy, next.copy),
        writable: added(current.writable ?? [], next.writable ?? []),
        templates: added((current.templates ?? []).map((t) => t.target), (next.templates ?? []).map((t) => t.target)),
        secrets: added((current.secrets ?? []).map((s) => s.name), (next.secrets ?? []).map((s) => s.name)),
        links: added((current.links ?? []).map((l) => l.path), (next.links ?? []).map((l) => l.path)),
      }),
      installs: installs.map((i) => {
        const has = new Set(applied.filter((u) => u.installId === i.id).map((u) => u.file));
        return Object.assign(new RolloutPlanInstall(), { installId: i.id, fsName: i.fsName, canary: i.id === canary, revision: i.codeRevision ?? group.revision!, sqlFiles: sqlFiles.filter((f) => !has.has(f)) });
      }),
    });
  }

  private async queueUpdate(
    m: EntityManager,
    group: SharedCodeGroup,
    kind: 'rollout' | 'rollback',
    toRevision: string,
    installs: Install[],
    canary: number | null,
    concurrency: number,
    by: AuditActor,
  ): Promise<RolloutQueuedView> {
    // Installs built before releases were tracked are on the group's release.
    await m.createQueryBuilder().update(Install).set({ codeRevision: group.revision }).where('sharedCodeGroupId = :g AND codeRevision IS NULL', { g: group.id }).execute();
    const update = await m.save(
      m.create(CodeUpdate, {
        kind, groupId: group.id, fromRevision: group.revision, toRevision, snippetName: null, snippetChecksum: null, snippetSql: null, force: false,
        state: 'planned', canaryInstallId: canary, concurrency, jobId: null, requestedBy: by.actor, startedAt: null, finishedAt: null, error: null,
      }),
    );
    const { job } = await this.queue.enqueue(CODE_UPDATE_ROLLOUT, { updateId: update.id }, { manager: m, resourceKey: codeGroupResourceKey(group.id) });
    await m.update(CodeUpdate, { id: update.id }, { jobId: job.id });
    await m.insert(CodeUpdateItem, installs.map((i) => ({ updateId: update.id, installId: i.id, state: 'pending' as const, canary: i.id === canary, jobId: null })));
    return Object.assign(new RolloutQueuedView(), { updateId: update.id, jobId: job.id, kind, canaryInstallId: canary, installIds: installs.map((i) => i.id) });
  }

  /** The release before the group's last successful rollout, if it is still kept. */
  private async rollbackTarget(m: EntityManager, group: SharedCodeGroup): Promise<string> {
    const last = await m.findOne(CodeUpdate, { where: { groupId: group.id, kind: In(['rollout', 'rollback']), toRevision: group.revision!, state: In(['done', 'failed']) }, order: { id: 'DESC' } });
    if (!last?.fromRevision) throw rolloutErrors.noWayBack(group, 'no rollout brought it to its revision');
    const release = await m.findOneBy(CodeRelease, { groupId: group.id, revision: last.fromRevision });
    if (!release || release.state !== 'ready') throw rolloutErrors.noWayBack(group, `release ${last.fromRevision} is no longer kept`);
    return last.fromRevision;
  }

  private async readyGroup(groupId: number): Promise<SharedCodeGroup> {
    const group = await this.dataSource.getRepository(SharedCodeGroup).findOneBy({ id: groupId });
    if (!group) throw new NotFoundError('code group', groupId);
    if (group.state !== 'ready' || !group.revision || !group.manifest) throw rolloutErrors.groupNotReady(group);
    return group;
  }

  /** The group's row, locked for the transaction (two requests for one group queue one update). */
  private async lockGroup(m: EntityManager, groupId: number): Promise<SharedCodeGroup> {
    const sqlite = this.dataSource.options.type === 'better-sqlite3';
    const group = await m.findOne(SharedCodeGroup, { where: { id: groupId }, ...(sqlite ? {} : { lock: { mode: 'pessimistic_write' as const } }) });
    if (!group) throw new NotFoundError('code group', groupId);
    if (group.state !== 'ready' || !group.revision || !group.manifest) throw rolloutErrors.groupNotReady(group);
    return group;
  }

  private async refuseActive(m: EntityManager, group: SharedCodeGroup): Promise<void> {
    const active = await m.findOne(CodeUpdate, { where: { groupId: group.id, kind: In(['rollout', 'rollback']), state: In([...ACTIVE]) } });
    if (active) throw rolloutErrors.running(group, active.id);
  }

  private async liveInstalls(m: EntityManager, group: SharedCodeGroup): Promise<Install[]> {
    const installs = await m.find(Install, { where: { sharedCodeGroupId: group.id, status: 'live' }, order: { id: 'ASC' } });
    if (installs.length === 0) throw rolloutErrors.noLiveInstalls(group);
    return installs;
  }

  /**
   * The canary: the one asked for, else the newest live install (the one
   * the fewest customers have seen yet; visit counts are not in the
   * catalog).
   */
  private canaryOf(group: SharedCodeGroup, installs: Install[], asked: number | undefined): number {
    if (asked !== undefined) {
      if (!installs.some((i) => i.id === asked)) throw rolloutErrors.badCanary(group, asked);
      return asked;
    }
    return installs[installs.length - 1]!.id;
  }
}
