import { posix } from 'node:path';
import { Inject, Injectable } from '@nestjs/common';
import { DataSource, In, IsNull } from 'typeorm';
import { CodeUpdate, CodeUpdateItem, DatabaseUpdate, Install, InstallServer, Server } from '@app/catalog';
import { CODE_LINK, CodeReleases, releaseDirOn, type CodebaseManifest } from '@app/codebases';
import { redactSecrets, registerSecrets } from '@app/common';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { prepareSql, splitSql, sqlChecksum, SqlStatementError, TenantDatabases, updateMarkerStatements } from '@app/databases';
import { checkServerPath, ServerAccess } from '@app/hosts';
import { decryptSecret, emptyCaches, homeOn, InstallBuildSteps, type BuildContext } from '@app/installs';
import { defineJobKind, JobHandler, QueueService, type JobContext } from '@app/queue';
import type { StepIO } from '@app/saga';

export interface InstallUpdatePayload {
  updateId: number;
  installId: number;
}

/**
 * One install's part of a rollout or rollback (a child of the update's parent
 * job). A failure inside it ends the item (failed, switched back); an
 * attempt is lost only to a worker that died or stalled, so a few deaths in
 * a row (a host rebooting its engines) still end in a resumed update.
 */
export const CODE_UPDATE_INSTALL = defineJobKind<InstallUpdatePayload>('code-update.install', { maxAttempts: 10, backoff: { baseMs: 1_000, maxMs: 30_000 } });

/** The items not ended and without a child job yet, as many as the update's concurrency leaves room for beside those in flight. */
export function itemsToStart(update: CodeUpdate, items: readonly CodeUpdateItem[]): CodeUpdateItem[] {
  const open = items.filter((i) => !ENDED.has(i.state));
  const queued = (i: CodeUpdateItem) => i.jobId !== null && i.jobId !== update.jobId;
  const room = Math.max(0, update.concurrency - open.filter(queued).length);
  return open.filter((i) => !queued(i)).slice(0, room);
}

/**
 * Child jobs for items of an update (one per install; the install's resource
 * key keeps it apart from the install's other jobs). The idempotency key
 * names the item as it is now: the parent and a finishing sibling asking for
 * the same item get one job; an item reset for a retry gets a new one.
 */
export async function enqueueItems(dataSource: DataSource, queue: QueueService, update: CodeUpdate, items: CodeUpdateItem[]): Promise<void> {
  for (const item of items) {
    if (item.jobId !== null && item.jobId !== update.jobId) continue;
    const { job } = await queue.enqueue(
      CODE_UPDATE_INSTALL,
      { updateId: update.id, installId: item.installId },
      { idempotencyKey: `codeupdate:${update.id}:install:${item.installId}:${item.id}:${item.updatedAt.getTime()}`, resourceKey: `install:${item.installId}`, parentId: update.jobId ?? undefined },
    );
    await dataSource.getRepository(CodeUpdateItem).update({ id: item.id, jobId: item.jobId === null ? IsNull() : item.jobId }, { jobId: job.id });
    item.jobId = job.id;
  }
}

/** The probe's bound within an install's update: the probe of the live check, asked again with backoff. */
const PROBE_BOUND_MS = 20_000;

const ENDED = new Set(['done', 'failed', 'skipped', 'rolled-back']);

/** What failed, as the report shows it (secrets masked; SQL with its file, line and statement). */
function failure(e: unknown): Pick<CodeUpdateItem, 'error' | 'errorFile' | 'errorLine' | 'errorStatement'> {
  const error = e instanceof Error ? e : new Error(String(e));
  const sqlError = e instanceof SqlStatementError ? e : null;
  return {
    error: redactSecrets(error.message).slice(0, 2048),
    errorFile: sqlError ? sqlError.file.slice(0, 255) : null,
    errorLine: sqlError?.line ?? null,
    errorStatement: sqlError ? redactSecrets(sqlError.statement).slice(0, 65_000) : null,
  };
}

/**
 * One install's update in a rollout (issue 16), on every server that has
 * its home (master, replicas, cloud handlers):
 * 1. its tree gets what the new release's manifest adds (directories,
 *    links, copies it lacks, writable directories), its config files are
 *    rendered from the new release's templates;
 * 2. the switch: `<home>/.code` points at the new release (one rename per
 *    server: a request that starts after it sees the new release; one in
 *    flight across it that includes through the home's paths may read files
 *    of both, which no link switch prevents), then the cron file where the
 *    new release's crons differ;
 * 3. its SQL updates not yet in database_updates, in order, as its own
 *    database user, each recorded when its file committed;
 * 4. caches: the manifest's `cachePaths` emptied;
 * 5. the probe of the live check through each dispatcher.
 * A failure switches it back to the release it was on (configs and crons
 * written again from that release) and the report carries the error. A rollback's
 * item is the switch back alone.
 *
 * Resumable: every step is idempotent, and SQL files already recorded are
 * not run again. What stays is an at-least-once window of one file: a
 * worker killed after the tenant database committed a file and before the
 * catalog recorded it runs that file again on resume.
 */
@Injectable()
export class InstallUpdateJob {
  /** SQL update names per release directory (a release never changes). */
  private readonly sqlNames = new Map<string, string[]>();
  /** Releases seen on a server (`<server id> <dir>`). */
  private readonly present = new Set<string>();

  constructor(
    private readonly dataSource: DataSource,
    private readonly access: ServerAccess,
    private readonly steps: InstallBuildSteps,
    private readonly releases: CodeReleases,
    private readonly tenants: TenantDatabases,
    private readonly queue: QueueService,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
  ) {}

  @JobHandler(CODE_UPDATE_INSTALL)
  async run(payload: InstallUpdatePayload, job: JobContext): Promise<void> {
    const canary = await this.update(payload, job);
    // The next install at once (the parent would only notice at its next look): at most the update's concurrency in flight.
    if (!canary && !job.signal.aborted) await this.next(payload.updateId);
  }

  /** The next pending installs of a running update, as many as its concurrency leaves room for (never the canary's turn: the parent decides after it). */
  private async next(updateId: number): Promise<void> {
    const update = await this.dataSource.getRepository(CodeUpdate).findOneBy({ id: updateId });
    if (!update || update.state !== 'running') return;
    const items = await this.dataSource.getRepository(CodeUpdateItem).find({ where: { updateId }, order: { canary: 'DESC', installId: 'ASC' } });
    const canary = items.find((i) => i.canary);
    if (canary && canary.state !== 'done') return;
    const waiting = itemsToStart(update, items);
    if (waiting.length > 0) await enqueueItems(this.dataSource, this.queue, update, waiting);
  }

  /** The item's update; true when the item is the canary. */
  private async update({ updateId, installId }: InstallUpdatePayload, job: JobContext): Promise<boolean> {
    const items = this.dataSource.getRepository(CodeUpdateItem);
    const item = await items.findOneBy({ updateId, installId });
    const update = await this.dataSource.getRepository(CodeUpdate).findOneBy({ id: updateId });
    if (!item || !update) {
      job.log(`code update ${updateId} has no item for install ${installId}`);
      return true;
    }
    if (ENDED.has(item.state)) {
      job.log(`install ${installId}: ${item.state} already`);
      return item.canary;
    }
    if (update.state !== 'running') {
      await items.update({ id: item.id }, { state: 'skipped', error: `the update is ${update.state}`, finishedAt: new Date() });
      job.log(`install ${installId}: skipped (the update is ${update.state})`);
      return true;
    }
    // An earlier attempt died with the item running: what it may have committed without recording is looked for (update markers).
    const resumed = item.state === 'running';
    const startedAt = item.startedAt ?? new Date();
    await items.update({ id: item.id }, { state: 'running', startedAt });
    const io: StepIO = { log: (line) => job.log(`install ${installId}: ${line}`), signal: job.signal } as StepIO;

    const install = await this.dataSource.getRepository(Install).findOneBy({ id: installId });
    if (!install || install.status !== 'live') {
      await items.update({ id: item.id }, { state: 'failed', error: `install ${installId} is ${install?.status ?? 'gone'}: not live`, finishedAt: new Date() });
      return item.canary;
    }
    if (install.sharedCodeGroupId !== update.groupId) {
      // Moved to another code group (POST /v1/installs/:id/codebase) since the update began: not this group's to switch.
      await items.update({ id: item.id }, { state: 'skipped', error: `install ${installId} is no longer in the group (now in group ${install.sharedCodeGroupId ?? 'none'})`, finishedAt: new Date() });
      return item.canary;
    }
    const context = await this.steps.loadContext(installId, job.jobId);
    const target = update.toRevision!;
    const from = item.switched ? update.fromRevision! : (install.codeRevision ?? update.fromRevision!);
    const servers = await this.serversOf(context);
    const manifest = await this.releases.recordedManifest(context.group, target);
    const next: BuildContext = { ...context, revision: target, manifest };

    if (update.kind === 'rollback') {
      await this.switchTo(next, servers, io, { revision: from, manifest: await this.releases.recordedManifest(context.group, from) });
      await items.update({ id: item.id }, { switched: true });
      await this.steps.probeSites().execute(next, io);
      await items.update({ id: item.id }, { state: 'done', probe: 'ok', finishedAt: new Date() });
      return item.canary;
    }

    let switched = item.switched;
    try {
      await this.ensureRelease(next, servers, io);
      // The tree only where the new release asks another one of the home (a new writable dir, copy, link...): most revisions ask the same.
      const previous = await this.releases.recordedManifest(context.group, from);
      for (const server of servers) {
        const after = await this.steps.treePlan(server, context.group, target, manifest);
        // The old release unreadable there (never synced): the whole tree is applied, which is idempotent.
        const before = await this.steps.treePlan(server, context.group, from, previous).catch((error: unknown) => {
          io.log(`release ${from.slice(0, 12)} cannot be listed on ${server.hostname} (${error instanceof Error ? error.message : String(error)}): the whole tree is applied`);
          return null;
        });
        if (JSON.stringify(before) !== JSON.stringify(after)) await this.steps.applyTree(next, manifest, { copies: 'missing', server });
      }
      await this.switchTo(next, servers, io, { revision: from, manifest: previous });
      switched = true;
      await items.update({ id: item.id }, { switched: true });

      const began = Date.now();
      const applied = await this.sqlUpdates(next, io, resumed);
      await items.update({ id: item.id }, { sqlApplied: item.sqlApplied + applied, sqlMs: (item.sqlMs ?? 0) + (Date.now() - began) });

      await this.clearCaches(next, servers, io);
      await items.update({ id: item.id }, { cachesCleared: true });

      await this.steps.probeSites().execute(next, io);
      await items.update({ id: item.id }, { state: 'done', probe: 'ok', finishedAt: new Date(), error: null, errorFile: null, errorLine: null, errorStatement: null });
      io.log(`on ${target.slice(0, 12)}`);
    } catch (e) {
      // A worker that lost the job (killed, lease gone, shutting down) leaves the item to the run that takes it over.
      if (job.signal.aborted) throw e;
      job.error(`install ${installId}: ${redactSecrets(e instanceof Error ? e.message : String(e))}`);
      const shown = failure(e);
      let back = '';
      if (switched && from !== target) {
        try {
          const previous: BuildContext = { ...context, revision: from, manifest: await this.releases.recordedManifest(context.group, from) };
          await this.switchTo(previous, servers, io, { revision: target, manifest });
          back = `; switched back to ${from.slice(0, 12)}`;
        } catch (again) {
          back = `; switching back to ${from.slice(0, 12)} failed too: ${redactSecrets(again instanceof Error ? again.message : String(again))}`;
        }
      }
      await items.update({ id: item.id }, { ...shown, error: `${shown.error}${back}`.slice(0, 2048), state: 'failed', switched: back.startsWith('; switched back') ? false : switched, probe: null, finishedAt: new Date() });
    }
    return item.canary;
  }

  /**
   * The release on every server of the home: a server that was down (or
   * not yet a handler of the install) when the rollout synced it gets it now
   * from the group's master, rather than a link into nothing.
   */
  private async ensureRelease(context: BuildContext, servers: Server[], io: StepIO): Promise<void> {
    const { group, revision } = context;
    let master: Server | null = null;
    for (const server of servers) {
      if (server.id === group.masterServerId) continue;
      const key = `${server.id} ${releaseDirOn(server, group, revision)}`;
      if (this.present.has(key)) continue;
      if (!(await this.access.executorFor(server).exists(server, posix.join(releaseDirOn(server, group, revision), '.')))) {
        master ??= await this.dataSource.getRepository(Server).findOneByOrFail({ id: group.masterServerId });
        await this.releases.sync(group, master, revision, [server], io.log);
      }
      // Seen there once, a release stays until it is pruned (never while an install is on it or being switched to it).
      this.present.add(key);
      if (this.present.size > 256) this.present.delete(this.present.values().next().value!);
    }
  }

  /** The servers that hold the install's home: its master and replicas, and its active cloud handlers. */
  private async serversOf(context: BuildContext): Promise<Server[]> {
    const clouds = await this.dataSource.getRepository(InstallServer).find({ where: { installId: context.install.id, role: 'cloud', state: In(['active', 'draining']) } });
    const cloudServers = clouds.length ? await this.dataSource.getRepository(Server).find({ where: { id: In(clouds.map((c) => c.serverId)) } }) : [];
    return [context.master, ...context.replicas, ...cloudServers].filter((s) => s.state !== 'down');
  }

  /**
   * The install onto `context.revision` on every server: its config files
   * rendered from that release, then its `.code` link renamed onto the
   * release (atomic per server), then its cron file where the release's
   * crons differ (after the link: a new cron runs the new code), then the
   * catalog.
   */
  private async switchTo(context: BuildContext, servers: Server[], io: StepIO, from?: { revision: string; manifest: CodebaseManifest }): Promise<void> {
    const { install, group, revision } = context;
    // The install's values do not depend on the release (`shared_code` is the `.code` link): the same templates render the same files.
    const render = !from || !(await this.sameTemplates(context, from));
    const crons = !from || JSON.stringify(from.manifest.crons ?? []) !== JSON.stringify(context.manifest.crons ?? []);
    for (const server of servers) {
      if (render) await this.steps.renderConfig(context, server, io);
      const home = homeOn(server, install);
      await this.access.executorFor(server).symlinkMany(server, [{ path: posix.join(home, CODE_LINK), target: posix.relative(home, releaseDirOn(server, group, revision)) }]);
      if (crons) await this.steps.writeCrons(context, server, io);
    }
    await this.dataSource.getRepository(Install).update({ id: install.id }, { codeRevision: revision });
    install.codeRevision = revision;
    io.log(`switched to ${revision.slice(0, 12)} on ${servers.map((s) => s.hostname).join(', ')}`);
  }

  /** Whether the release `from` has the same templates (list and sources, read once per engine) as the context's. */
  private async sameTemplates(context: BuildContext, from: { revision: string; manifest: CodebaseManifest }): Promise<boolean> {
    const { master, group, manifest, revision } = context;
    if (JSON.stringify(from.manifest.templates ?? []) !== JSON.stringify(manifest.templates ?? [])) return false;
    for (const template of manifest.templates ?? []) {
      const [a, b] = await Promise.all([
        this.steps.releaseFile(master, posix.join(releaseDirOn(master, group, from.revision), template.source)),
        this.steps.releaseFile(master, posix.join(releaseDirOn(master, group, revision), template.source)),
      ]);
      if (!a.equals(b)) return false;
    }
    return true;
  }

  /** The release's SQL updates the install lacks (database_updates), in file order, each recorded once its file committed. Returns how many ran. */
  private async sqlUpdates(context: BuildContext, io: StepIO, resumed: boolean): Promise<number> {
    const { install, master, group, manifest, dbServer, revision } = context;
    if (!manifest.sql) return 0;
    const executor = this.access.executorFor(master);
    const dir = checkServerPath(master, posix.join(releaseDirOn(master, group, revision), manifest.sql.updates));
    // A release never changes: its SQL file names are listed once per engine.
    let names = this.sqlNames.get(`${master.id} ${dir}`);
    if (!names) {
      names = (await executor.mustRun(master, ['find', dir, '-mindepth', '1', '-maxdepth', '1', '-type', 'f', '-name', '*.sql', '-printf', '%f\\0']))
        .split('\0')
        .filter(Boolean)
        .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
      this.sqlNames.set(`${master.id} ${dir}`, names);
      if (this.sqlNames.size > 32) this.sqlNames.delete(this.sqlNames.keys().next().value!);
    }
    const updates = this.dataSource.getRepository(DatabaseUpdate);
    const have = new Set((await updates.find({ where: { installId: install.id } })).map((u) => u.file));
    const todo = names.filter((n) => !have.has(n));
    if (todo.length === 0) return 0;
    const password = decryptSecret(this.config.secretsKey, install.dbPasswordEnc);
    registerSecrets(password);
    const session = manifest.sql.session ?? {};
    // A worker killed after a file's end committed in the tenant database and before the catalog recorded it: the file's marker says it ran.
    const markers = resumed ? await this.tenants.updateMarkers(dbServer, install.dbName) : new Map<string, string>();
    let ran = 0;
    for (const name of todo) {
      const text = (await this.steps.releaseFile(master, posix.join(dir, name))).toString('utf8');
      const checksum = sqlChecksum(text);
      if (markers.get(name) === checksum) {
        await updates.insert({ installId: install.id, file: name, pluginId: null, checksum, appliedAt: new Date(), jobId: context.jobId });
        io.log(`${name} ran in an earlier attempt (its marker is in the database): recorded, not run again`);
        ran += 1;
        continue;
      }
      const marker = updateMarkerStatements(name, checksum);
      await this.tenants.runStatements(dbServer, install.dbName, { user: install.dbUser, password }, name, [marker.before, ...splitSql(prepareSql(text, manifest.sql)), marker.after], session);
      await updates.insert({ installId: install.id, file: name, pluginId: null, checksum, appliedAt: new Date(), jobId: context.jobId });
      io.log(`applied ${name}`);
      ran += 1;
    }
    return ran;
  }

  /** The manifest's cache directories emptied on every server (the directories kept, with their owners). */
  private async clearCaches(context: BuildContext, servers: Server[], io: StepIO): Promise<void> {
    const paths = context.manifest.cachePaths ?? [];
    if (paths.length === 0) return;
    for (const server of servers) await emptyCaches(this.access, server, context.install, paths);
    io.log(`emptied ${paths.join(', ')}`);
  }
}
