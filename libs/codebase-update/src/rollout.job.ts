import { Injectable } from '@nestjs/common';
import { DataSource, In } from 'typeorm';
import { CodeRelease, CodeUpdate, CodeUpdateItem, Job, Server, SharedCodeGroup } from '@app/catalog';
import { CodeReleases, redactedError, ReleaseRefused } from '@app/codebases';
import { redactSecrets } from '@app/common';
import { defineJobKind, JobDeferredError, JobHandler, QueueService, type JobContext } from '@app/queue';
import { enqueueItems, itemsToStart } from './install-update.job.js';
import type { CodeUpdatePayload } from './sql-snippet.job.js';

/** A rollout's (or rollback's) parent job: the release, then the canary, then the others with bounded concurrency. */
export const CODE_UPDATE_ROLLOUT = defineJobKind<CodeUpdatePayload>('code-update.rollout', { maxAttempts: 5, backoff: { baseMs: 5_000, maxMs: 120_000 } });

/** One rollout (or clone, or removal) of a group at a time: the code group's own resource key. */
export const codeGroupResourceKey = (groupId: number) => `codegroup:${groupId}`;

/** How often the parent looks at its children while they run (deferred: no worker slot held, no attempt used). */
const WATCH_MS = 250;
/** Releases kept besides the group's own (a rollback's way back) once a rollout succeeded. */
export const RELEASES_KEPT = 2;

const ENDED = new Set(['done', 'failed', 'skipped', 'rolled-back']);

/**
 * The parent job of a rollout (issue 16). Each run does what is left and
 * defers itself while children run, so a killed worker's job resumes where
 * the catalog says it is:
 * 1. the release: the revision fetched on the group's master (one fetch),
 *    made into `releases/<commit>`, its manifest read and checked, synced to
 *    every other server of the group (one copy per server), recorded;
 * 2. the canary's child job; a failed canary stops the rollout (the canary
 *    is back on its release, the others untouched: skipped);
 * 3. once the canary is healthy the group's revision is the new one (new
 *    installs get it), and the others follow, at most `concurrency` at once;
 * 4. the end: done, or failed with the failed installs named; after a
 *    successful rollout old releases no install uses are pruned (the newest
 *    RELEASES_KEPT kept for a rollback).
 * A rollback is the same without the release, the canary and the SQL.
 */
@Injectable()
export class RolloutJob {
  constructor(
    private readonly dataSource: DataSource,
    private readonly releases: CodeReleases,
    private readonly queue: QueueService,
  ) {}

  @JobHandler(CODE_UPDATE_ROLLOUT)
  async run({ updateId }: CodeUpdatePayload, job: JobContext): Promise<void> {
    const updates = this.dataSource.getRepository(CodeUpdate);
    const update = await updates.findOneBy({ id: updateId });
    if (!update) return job.log(`code update ${updateId} is gone`);
    if (update.state !== 'planned' && update.state !== 'running') return job.log(`code update ${updateId} is ${update.state} already`);
    if (update.state === 'planned') {
      await updates.update({ id: updateId }, { state: 'running', startedAt: new Date() });
      update.state = 'running';
    }
    const group = await this.dataSource.getRepository(SharedCodeGroup).findOneByOrFail({ id: update.groupId! });
    const master = await this.dataSource.getRepository(Server).findOneByOrFail({ id: group.masterServerId });

    if (update.kind === 'rollout') {
      const ready = await this.release(update, group, master, job);
      if (!ready) return;
    } else if (group.revision !== update.toRevision) {
      // A rollback: new installs get the release it goes back to at once.
      await this.flip(group, update.toRevision!, job);
    }

    const items = await this.dataSource.getRepository(CodeUpdateItem).find({ where: { updateId }, order: { canary: 'DESC', installId: 'ASC' } });
    await this.reapDeadChildren(items, job);

    const canary = items.find((i) => i.canary);
    if (canary && !ENDED.has(canary.state)) {
      await this.enqueue(update, [canary]);
      throw new JobDeferredError(`waiting for the canary (install ${canary.installId})`, WATCH_MS);
    }
    if (canary && canary.state !== 'done') {
      await this.stop(update, items, `the canary (install ${canary.installId}) failed: ${canary.error ?? canary.state}`, job);
      return;
    }
    if (update.kind === 'rollout' && group.revision !== update.toRevision) await this.flip(group, update.toRevision!, job);

    const open = items.filter((i) => !ENDED.has(i.state));
    if (open.length > 0) {
      const next = itemsToStart(update, items);
      if (next.length > 0) await this.enqueue(update, next);
      throw new JobDeferredError(`${items.length - open.length} of ${items.length} installs ended`, WATCH_MS);
    }

    const failed = items.filter((i) => i.state === 'failed').map((i) => i.installId);
    const counts = ['done', 'failed', 'skipped'].map((s) => `${items.filter((i) => i.state === s).length} ${s}`).join(', ');
    // Pruned before the update ends (a run killed here prunes again: it is idempotent), so a finished rollout has its releases settled.
    if (failed.length === 0 && update.kind === 'rollout') {
      try {
        await this.releases.prune(await this.dataSource.getRepository(SharedCodeGroup).findOneByOrFail({ id: group.id }), master, RELEASES_KEPT, (line) => job.log(line));
      } catch (e) {
        job.error(`pruning old releases failed (the next rollout tries again): ${redactSecrets((e as Error).message)}`);
      }
    }
    await updates.update({ id: updateId }, { state: failed.length > 0 ? 'failed' : 'done', finishedAt: new Date(), error: failed.length > 0 ? `failed on install(s) ${failed.join(', ')}`.slice(0, 1024) : null });
    job.log(`${update.kind} of ${group.name} to ${update.toRevision!.slice(0, 12)}: ${counts}`);
  }

  /** The new release on every server of the group, recorded (once; a later run finds it ready). False when it can never be made (the update failed). */
  private async release(update: CodeUpdate, group: SharedCodeGroup, master: Server, job: JobContext): Promise<boolean> {
    const known = /^[0-9a-f]{40}$/.test(update.toRevision ?? '') ? await this.dataSource.getRepository(CodeRelease).findOneBy({ groupId: group.id, revision: update.toRevision! }) : null;
    if (known?.state === 'ready') return true;
    const access = this.releases.repoAccess(group);
    const log = (line: string) => job.log(access.redact(line));
    try {
      const commit = await this.releases.resolve(group, master, update.toRevision!, { fetch: true, log });
      if (commit !== update.toRevision) {
        await this.dataSource.getRepository(CodeUpdate).update({ id: update.id }, { toRevision: commit });
        log(`revision ${update.toRevision} is ${commit}`);
        update.toRevision = commit;
      }
      if (commit === update.fromRevision) throw new ReleaseRefused(`the group is at ${commit} already`);
      await this.releases.make(group, master, commit, log);
      const manifest = await this.releases.manifestOf(group, master, commit, { fallback: group.manifest });
      await this.releases.checkPhp(group, master, manifest, { log, error: (line) => job.error(line) });
      await this.releases.sync(group, master, commit, await this.releases.serversOf(group), log);
      await this.releases.record(group, commit, manifest);
      return true;
    } catch (error) {
      const shown = redactedError(error, access);
      if (!(shown instanceof ReleaseRefused) && job.attempt < job.maxAttempts) throw shown;
      const items = await this.dataSource.getRepository(CodeUpdateItem).find({ where: { updateId: update.id } });
      await this.stop(update, items, `the release could not be made: ${(shown as Error).message}`, job, 'failed');
      return false;
    }
  }

  /** The group's revision (and manifest) become the release's: new installs are built on it. */
  private async flip(group: SharedCodeGroup, revision: string, job: JobContext): Promise<void> {
    const release = await this.dataSource.getRepository(CodeRelease).findOneByOrFail({ groupId: group.id, revision });
    await this.dataSource.getRepository(SharedCodeGroup).update({ id: group.id }, { revision, manifest: release.manifest as never });
    group.revision = revision;
    job.log(`code group ${group.name} is at ${revision.slice(0, 12)}: new installs get this release`);
  }

  private async enqueue(update: CodeUpdate, items: CodeUpdateItem[]): Promise<void> {
    await enqueueItems(this.dataSource, this.queue, update, items);
  }

  /** An item whose child job died (gave up without ending it) fails with the job's last error. */
  private async reapDeadChildren(items: CodeUpdateItem[], job: JobContext): Promise<void> {
    const open = items.filter((i) => !ENDED.has(i.state) && i.jobId !== null);
    if (open.length === 0) return;
    const dead = await this.dataSource.getRepository(Job).find({ where: { id: In(open.map((i) => i.jobId!)), state: In(['dead', 'cancelled']) } });
    for (const child of dead) {
      const item = open.find((i) => i.jobId === child.id)!;
      const error = `its job ${child.id} ${child.state === 'dead' ? 'gave up' : 'was cancelled'}: ${redactSecrets(child.lastError ?? 'no error recorded')}`.slice(0, 2048);
      await this.dataSource.getRepository(CodeUpdateItem).update({ id: item.id }, { state: 'failed', error, finishedAt: new Date() });
      item.state = 'failed';
      item.error = error;
      job.error(`install ${item.installId}: ${error}`);
    }
  }

  /** Ends the update without the others: every item not ended is skipped. */
  private async stop(update: CodeUpdate, items: CodeUpdateItem[], why: string, job: JobContext, state: 'stopped' | 'failed' = 'stopped'): Promise<void> {
    const open = items.filter((i) => !ENDED.has(i.state));
    if (open.length > 0) await this.dataSource.getRepository(CodeUpdateItem).update({ id: In(open.map((i) => i.id)) }, { state: 'skipped', error: `not updated: ${why}`.slice(0, 2048), finishedAt: new Date() });
    await this.dataSource.getRepository(CodeUpdate).update({ id: update.id }, { state, finishedAt: new Date(), error: why.slice(0, 1024) });
    job.error(`${update.kind} ${update.id} ${state}: ${why}`);
  }
}
