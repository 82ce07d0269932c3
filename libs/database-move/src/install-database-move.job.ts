import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { DatabaseMove, DatabaseMoveItem, Install, Server } from '@app/catalog';
import { redactSecrets } from '@app/common';
import { InstallBuildSteps, type BuildContext } from '@app/installs';
import { defineJobKind, JobHandler, type JobContext } from '@app/queue';
import { SagaCompensatedError, SagaNeedsAttentionError, SagaRunner, type SagaDefinition, type StepIO } from '@app/saga';
import { CacheClears } from './cache-clears.js';
import { DatabaseMoveChecks } from './database-move.checks.js';
import { InstallHomes } from './install-homes.js';
import { ITEM_ENDED } from './move-items.js';

export { ITEM_ENDED } from './move-items.js';

export interface InstallDatabaseMovePayload {
  moveId: number;
  installId: number;
}

/**
 * One install's part of a database move (a child of the move's parent job;
 * resource key `install:<id>`). The parent runs these sagas itself, holding
 * their jobs (MoveChildJobs); a worker runs one through this kind's handler
 * only when it was taken back (its holder died) or given back for a retry.
 */
export const DATABASE_MOVE_INSTALL = defineJobKind<InstallDatabaseMovePayload>('database-move.install', { maxAttempts: 10, backoff: { baseMs: 1_000, maxMs: 30_000 } });

export const INSTALL_DATABASE_MOVE_SAGA = 'install-database-move';

/** What every install of a move shares, read once per run of the parent. */
export interface MoveShared {
  move: DatabaseMove;
  from: Server;
  to: Server;
  /** The servers with a copy of each install's home (down ones included). */
  homes: Map<number, Server[]>;
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
  down: Server[];
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
    private readonly steps: InstallBuildSteps,
    private readonly checks: DatabaseMoveChecks,
    private readonly homes: InstallHomes,
    private readonly sagas: SagaRunner,
    private readonly caches: CacheClears,
  ) {}

  @JobHandler(DATABASE_MOVE_INSTALL)
  async run(payload: InstallDatabaseMovePayload, job: JobContext): Promise<void> {
    await this.move(payload, job);
  }

  /** The install's saga under `job` (a worker's claim, or the parent holding the child), with what the move shares when the parent has it. */
  async move({ moveId, installId }: InstallDatabaseMovePayload, job: JobContext, shared?: MoveShared & { item: DatabaseMoveItem }): Promise<void> {
    const items = this.dataSource.getRepository(DatabaseMoveItem);
    const item = shared?.item ?? (await items.findOneBy({ moveId, installId }));
    const move = shared?.move ?? (await this.dataSource.getRepository(DatabaseMove).findOneBy({ id: moveId }));
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
      await this.sagas.run(this.definition(job, item.id, shared), { moveId, installId }, job);
    } catch (e) {
      if (!(e instanceof SagaCompensatedError || e instanceof SagaNeedsAttentionError)) throw e;
      await items.update({ id: item.id }, { state: 'failed', error: redactSecrets(e.message).slice(0, 2048), finishedAt: new Date() });
      throw e;
    }
  }

  definition(job: JobContext, itemId: number, shared?: MoveShared): SagaDefinition<InstallMoveContext, InstallDatabaseMovePayload> {
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
      loadContext: (payload) => this.loadContext(payload, job.jobId, itemId, shared),
      // What the report shows of a done install, written with its end (one statement instead of one per step).
      onCompleted: async (c) => {
        const filesRendered = c.servers.length * (c.build.manifest.templates?.length ?? 0);
        await this.dataSource.getRepository(DatabaseMoveItem).update({ id: c.itemId }, { state: 'done', error: null, finishedAt: new Date(), filesRendered, cachesCleared: true });
      },
    };
  }

  private async loadContext({ moveId, installId }: InstallDatabaseMovePayload, jobId: number, itemId: number, shared?: MoveShared): Promise<InstallMoveContext> {
    const build = await this.steps.loadContext(installId, jobId);
    let { move, from, to } = shared ?? {};
    if (!move || !from || !to) {
      move = await this.dataSource.getRepository(DatabaseMove).findOneByOrFail({ id: moveId });
      const servers = this.dataSource.getRepository(Server);
      [from, to] = await Promise.all([servers.findOneByOrFail({ id: move.fromServerId }), servers.findOneByOrFail({ id: move.toServerId })]);
    }
    const homes = shared?.homes.get(installId) ?? (await this.homes.of([build.install])).get(installId) ?? [];
    return { move, itemId, build, from, to, servers: homes.filter((s) => s.state !== 'down'), down: homes.filter((s) => s.state === 'down') };
  }

  private async check({ build, to }: InstallMoveContext, io: StepIO): Promise<void> {
    const problem = await this.checks.loginProblem(build.install, to);
    // The target lacks what the install needs: trying again within the run cannot help.
    if (problem) throw Object.assign(new Error(problem), { permanent: true });
    io.log(`${build.install.dbUser} uses ${build.install.dbName} on ${to.hostname}`);
  }

  /** Every config file of the install on every server with a copy, rendered with `db` as its database server (the servers at once). */
  private async render(context: InstallMoveContext, db: Server, io: StepIO): Promise<void> {
    const { build, servers } = context;
    for (const server of context.down) io.log(`${server.hostname} is down: its config files are left as they are (render them when it is back: install.config)`);
    const pointed: BuildContext = { ...build, dbServer: db };
    await Promise.all(servers.map((server) => this.steps.renderConfig(pointed, server, { ...io, log: () => undefined })));
    const files = servers.length * (pointed.manifest.templates?.length ?? 0);
    io.log(`${files} config file(s) point at ${db.hostname} on ${servers.map((s) => s.hostname).join(', ') || 'no server that is up'}`);
  }

  private async point({ build }: InstallMoveContext, from: Server, to: Server, io: StepIO): Promise<void> {
    await this.dataSource.getRepository(Install).update({ id: build.install.id, dbServerId: from.id }, { dbServerId: to.id });
    io.log(`catalog: database server ${to.hostname}`);
  }

  private async clearCaches({ build, servers }: InstallMoveContext, io: StepIO): Promise<void> {
    const paths = build.manifest.cachePaths ?? [];
    await Promise.all(servers.map((server) => this.caches.empty(server, build.install, paths)));
    io.log(paths.length ? `emptied ${paths.join(', ')}` : 'no cache paths in the manifest');
  }
}
