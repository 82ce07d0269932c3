import { Injectable } from '@nestjs/common';
import { DataSource, IsNull } from 'typeorm';
import { DatabaseMove, DatabaseMoveItem, Install, Server } from '@app/catalog';
import { redactSecrets } from '@app/common';
import { ServerAccess } from '@app/hosts';
import { emptyCaches, InstallBuildSteps, type BuildContext } from '@app/installs';
import { defineJobKind, JobHandler, QueueService, type JobContext } from '@app/queue';
import { SagaCompensatedError, SagaNeedsAttentionError, SagaRunner, type SagaDefinition, type StepIO } from '@app/saga';
import { DatabaseMoveChecks } from './database-move.checks.js';
import { InstallHomes } from './install-homes.js';
import { ITEM_ENDED, itemsToStart } from './move-items.js';

export { ITEM_ENDED, itemsToStart } from './move-items.js';

export interface InstallDatabaseMovePayload {
  moveId: number;
  installId: number;
}

/** One install's part of a database move (a child of the move's parent job; resource key `install:<id>`). */
export const DATABASE_MOVE_INSTALL = defineJobKind<InstallDatabaseMovePayload>('database-move.install', { maxAttempts: 10, backoff: { baseMs: 1_000, maxMs: 30_000 } });

export const INSTALL_DATABASE_MOVE_SAGA = 'install-database-move';

/** Child jobs for items of a move (the idempotency key names the item: the parent and a finishing sibling asking for the same item get one job). */
export async function enqueueItems(dataSource: DataSource, queue: QueueService, move: DatabaseMove, items: DatabaseMoveItem[]): Promise<void> {
  for (const item of items) {
    if (item.jobId !== null) continue;
    const { job } = await queue.enqueue(
      DATABASE_MOVE_INSTALL,
      { moveId: move.id, installId: item.installId },
      { idempotencyKey: `databasemove:${move.id}:install:${item.installId}`, resourceKey: `install:${item.installId}`, parentId: move.jobId ?? undefined },
    );
    await dataSource.getRepository(DatabaseMoveItem).update({ id: item.id, jobId: IsNull() }, { jobId: job.id });
    item.jobId = job.id;
  }
}

/** Rebuilt from the catalog at every run. */
export interface InstallMoveContext {
  move: DatabaseMove;
  itemId: number;
  build: BuildContext;
  from: Server;
  to: Server;
  /** The servers with a copy of the home that are up (a down one is said so in the output: it keeps its old files). */
  servers: Server[];
}

/**
 * One install moved to another database server, as a saga:
 * 1. `check`: its login works on the target (again: the move may have
 *    waited since the preconditions);
 * 2. `config`: its config files rendered with the target's host, port and
 *    socket on every server with a copy (each file written atomically:
 *    beside it, then renamed). Undone by rendering them with the old one;
 * 3. `catalog`: the install's database server is the target (only if it
 *    still is the old one). Undone by setting it back;
 * 4. `caches` (the pivot: the move is made, only retried forward): the
 *    manifest's cache directories emptied on every server.
 * Resumable: a run that finds a step running executes it again (all are
 * idempotent).
 */
@Injectable()
export class InstallDatabaseMoveJob {
  constructor(
    private readonly dataSource: DataSource,
    private readonly access: ServerAccess,
    private readonly steps: InstallBuildSteps,
    private readonly checks: DatabaseMoveChecks,
    private readonly homes: InstallHomes,
    private readonly sagas: SagaRunner,
    private readonly queue: QueueService,
  ) {}

  @JobHandler(DATABASE_MOVE_INSTALL)
  async run(payload: InstallDatabaseMovePayload, job: JobContext): Promise<void> {
    try {
      await this.move(payload, job);
    } finally {
      // The next install at once (the parent would only notice at its next look).
      if (!job.signal.aborted) await this.next(payload.moveId);
    }
  }

  private async move({ moveId, installId }: InstallDatabaseMovePayload, job: JobContext): Promise<void> {
    const items = this.dataSource.getRepository(DatabaseMoveItem);
    const item = await items.findOneBy({ moveId, installId });
    const move = await this.dataSource.getRepository(DatabaseMove).findOneBy({ id: moveId });
    if (!item || !move) return job.log(`database move ${moveId} has no item for install ${installId}`);
    if (ITEM_ENDED.has(item.state)) return job.log(`install ${installId}: ${item.state} already`);
    const skip = async (why: string) => {
      await items.update({ id: item.id }, { state: 'skipped', error: why, finishedAt: new Date() });
      job.log(`install ${installId}: skipped (${why})`);
    };
    if (move.state !== 'running') return skip(`the move is ${move.state}`);
    const install = await this.dataSource.getRepository(Install).findOneBy({ id: installId });
    if (!install || install.status !== 'live') return skip(`install ${installId} is ${install?.status ?? 'gone'}: not live`);
    // A first run only: a resumed one may find the catalog moved already by its own `catalog` step.
    if (item.state === 'pending' && install.dbServerId !== move.fromServerId) return skip(`its database server is ${install.dbServerId} now, not ${move.fromServerId}`);
    await items.update({ id: item.id }, { state: 'running', startedAt: item.startedAt ?? new Date() });
    try {
      await this.sagas.run(this.definition(job), { moveId, installId }, job);
    } catch (e) {
      if (!(e instanceof SagaCompensatedError || e instanceof SagaNeedsAttentionError)) throw e;
      await items.update({ id: item.id }, { state: 'failed', error: redactSecrets(e.message).slice(0, 2048), finishedAt: new Date() });
      throw e;
    }
  }

  definition(job: JobContext): SagaDefinition<InstallMoveContext, InstallDatabaseMovePayload> {
    const nothing = async () => undefined;
    return {
      name: INSTALL_DATABASE_MOVE_SAGA,
      pivot: 'caches',
      stepRetryDelaysMs: [500, 2_000],
      steps: [
        { name: 'check', execute: (c, io) => this.check(c, io), compensate: nothing },
        { name: 'config', execute: (c, io) => this.render(c, c.to, io), compensate: (c, io) => this.render(c, c.from, io) },
        { name: 'catalog', execute: (c, io) => this.point(c, c.from, c.to, io), compensate: (c, io) => this.point(c, c.to, c.from, io) },
        { name: 'caches', execute: (c, io) => this.clearCaches(c, io), compensate: nothing },
      ],
      loadContext: (payload) => this.loadContext(payload, job.jobId),
      onCompleted: async (c) => {
        await this.dataSource.getRepository(DatabaseMoveItem).update({ id: c.itemId }, { state: 'done', error: null, finishedAt: new Date() });
      },
    };
  }

  private async loadContext({ moveId, installId }: InstallDatabaseMovePayload, jobId: number): Promise<InstallMoveContext> {
    const move = await this.dataSource.getRepository(DatabaseMove).findOneByOrFail({ id: moveId });
    const item = await this.dataSource.getRepository(DatabaseMoveItem).findOneByOrFail({ moveId, installId });
    const build = await this.steps.loadContext(installId, jobId);
    const servers = this.dataSource.getRepository(Server);
    const [from, to] = await Promise.all([servers.findOneByOrFail({ id: move.fromServerId }), servers.findOneByOrFail({ id: move.toServerId })]);
    const homes = (await this.homes.of([build.install])).get(installId) ?? [];
    return { move, itemId: item.id, build, from, to, servers: homes.filter((s) => s.state !== 'down') };
  }

  private async check({ build, to }: InstallMoveContext, io: StepIO): Promise<void> {
    const problem = await this.checks.loginProblem(build.install, to);
    // The target lacks what the install needs: trying again within the run cannot help.
    if (problem) throw Object.assign(new Error(problem), { permanent: true });
    io.log(`${build.install.dbUser} uses ${build.install.dbName} on ${to.hostname}`);
  }

  /** Every config file of the install on every server with a copy, rendered with `db` as its database server. */
  private async render(context: InstallMoveContext, db: Server, io: StepIO): Promise<void> {
    const { build, servers } = context;
    const homes = await this.homes.of([build.install]);
    for (const server of (homes.get(build.install.id) ?? []).filter((s) => s.state === 'down')) io.log(`${server.hostname} is down: its config files are left as they are (render them when it is back: install.config)`);
    let files = 0;
    const pointed: BuildContext = { ...build, dbServer: db };
    for (const server of servers) {
      await this.steps.renderConfig(pointed, server, { ...io, log: () => undefined });
      files += pointed.manifest.templates?.length ?? 0;
    }
    await this.dataSource.getRepository(DatabaseMoveItem).update({ id: context.itemId }, { filesRendered: files });
    io.log(`${files} config file(s) point at ${db.hostname} on ${servers.map((s) => s.hostname).join(', ') || 'no server that is up'}`);
  }

  private async point({ build }: InstallMoveContext, from: Server, to: Server, io: StepIO): Promise<void> {
    await this.dataSource.getRepository(Install).update({ id: build.install.id, dbServerId: from.id }, { dbServerId: to.id });
    io.log(`catalog: database server ${to.hostname}`);
  }

  private async clearCaches({ build, servers, itemId }: InstallMoveContext, io: StepIO): Promise<void> {
    const paths = build.manifest.cachePaths ?? [];
    for (const server of servers) await emptyCaches(this.access, server, build.install, paths);
    await this.dataSource.getRepository(DatabaseMoveItem).update({ id: itemId }, { cachesCleared: true });
    io.log(paths.length ? `emptied ${paths.join(', ')}` : 'no cache paths in the manifest');
  }

  private async next(moveId: number): Promise<void> {
    const move = await this.dataSource.getRepository(DatabaseMove).findOneBy({ id: moveId });
    if (!move || move.state !== 'running') return;
    const items = await this.dataSource.getRepository(DatabaseMoveItem).find({ where: { moveId }, order: { installId: 'ASC' } });
    const waiting = itemsToStart(move, items);
    if (waiting.length > 0) await enqueueItems(this.dataSource, this.queue, move, waiting);
  }
}
