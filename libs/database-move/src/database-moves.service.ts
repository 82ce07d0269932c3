import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { AuditEventRepository, DatabaseMove, DatabaseMoveItem, Install, Server, type AuditActor } from '@app/catalog';
import { NotFoundError, redactSecrets, unifiedDiff, validateDto, withSecretScope } from '@app/common';
import { ServerAccess } from '@app/hosts';
import { InstallBuildSteps } from '@app/installs';
import { QueueService } from '@app/queue';
import { databaseMoveErrors } from './database-move.errors.js';
import { DatabaseMoveChecks } from './database-move.checks.js';
import { DATABASE_MOVE, DATABASE_MOVE_RESOURCE_KEY } from './database-move.job.js';
import { ConfigFileDiffView, DatabaseMovePlanInstall, DatabaseMovePlanView, DatabaseMoveQueuedView, DatabaseMoveReportView, DEFAULT_MOVE_CONCURRENCY, MoveDatabaseDto } from './dto/database-move.dto.js';
import { InstallHomes, mapLimited } from './install-homes.js';

/** Installs whose config files a dry run renders and reads at once. */
const PLANS_AT_ONCE = 4;

/**
 * Database failover (SPEC.md "Operations", the seed's move_database): every
 * live install whose tenant database is on one server pointed at another
 * that already holds its database and user (a replica), on every server
 * with a copy of its config. The API and the `move-database` snippet come
 * here: a dry run (the diffs), or the preconditions then one parent job
 * with a saga per install, and the report.
 */
@Injectable()
export class DatabaseMovesService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly queue: QueueService,
    private readonly audit: AuditEventRepository,
    private readonly checks: DatabaseMoveChecks,
    private readonly homes: InstallHomes,
    private readonly steps: InstallBuildSteps,
    private readonly access: ServerAccess,
  ) {}

  /** A database server by id or hostname (the snippet's `--from` / `--to`). */
  async serverRef(ref: string): Promise<Server> {
    const servers = this.dataSource.getRepository(Server);
    const server = /^\d{1,9}$/.test(ref) ? await servers.findOneBy({ id: Number(ref) }) : await servers.findOneBy({ hostname: ref });
    if (!server) throw new NotFoundError('server', ref);
    return server;
  }

  /** Queues the move (the preconditions met: else refused with every problem, nothing changed), or answers its plan (dryRun). */
  async start(request: MoveDatabaseDto, by: AuditActor): Promise<DatabaseMoveQueuedView | DatabaseMovePlanView> {
    const dto = await validateDto(MoveDatabaseDto, request);
    const [from, to] = await Promise.all([this.databaseServer(dto.from), this.databaseServer(dto.to)]);
    if (from.id === to.id) throw databaseMoveErrors.sameServer(from);
    const installs = await this.installsOn(from);
    if (installs.length === 0) throw databaseMoveErrors.nothingToMove(from);
    if (dto.dryRun) return withSecretScope(() => this.plan(installs, from, to));

    await this.refuseRunning();
    const problems = await withSecretScope(() => this.checks.problems(installs, to));
    if (problems.length > 0) {
      await this.audit.record({ ...by, action: 'database.move.refused', targetType: 'server', targetId: to.id, details: { from: from.id, to: to.id, problems: problems.slice(0, 50) } });
      throw databaseMoveErrors.refused(to, problems);
    }
    const queued = await this.dataSource.transaction(async (m) => {
      const running = await m.findOne(DatabaseMove, { where: { state: 'running' } });
      if (running) throw databaseMoveErrors.running(running.id);
      const move = await m.save(
        m.create(DatabaseMove, { fromServerId: from.id, toServerId: to.id, state: 'running', concurrency: dto.concurrency ?? DEFAULT_MOVE_CONCURRENCY, jobId: null, requestedBy: by.actor, startedAt: new Date(), finishedAt: null, error: null }),
      );
      const { job } = await this.queue.enqueue(DATABASE_MOVE, { moveId: move.id }, { manager: m, resourceKey: DATABASE_MOVE_RESOURCE_KEY });
      await m.update(DatabaseMove, { id: move.id }, { jobId: job.id });
      for (let i = 0; i < installs.length; i += 500) {
        await m.insert(DatabaseMoveItem, installs.slice(i, i + 500).map((x) => ({ moveId: move.id, installId: x.id, state: 'pending' as const, jobId: null })));
      }
      return Object.assign(new DatabaseMoveQueuedView(), { moveId: move.id, jobId: job.id, from: from.hostname, to: to.hostname, installIds: installs.map((x) => x.id) });
    });
    this.queue.nudge();
    await this.audit.record({ ...by, action: 'database.move', targetType: 'server', targetId: to.id, details: { moveId: queued.moveId, from: from.id, to: to.id, installs: installs.length } });
    return queued;
  }

  async report(moveId: number): Promise<DatabaseMoveReportView> {
    const move = await this.dataSource.getRepository(DatabaseMove).findOneBy({ id: moveId });
    if (!move) throw new NotFoundError('database move', moveId);
    const items = await this.dataSource.getRepository(DatabaseMoveItem).find({ where: { moveId }, order: { installId: 'ASC' } });
    return DatabaseMoveReportView.of(move, items);
  }

  /** The moves, newest first (counts, no items). */
  async list(): Promise<DatabaseMoveReportView[]> {
    const moves = await this.dataSource.getRepository(DatabaseMove).find({ order: { id: 'DESC' }, take: 100 });
    const counts = moves.length
      ? await this.dataSource
          .getRepository(DatabaseMoveItem)
          .createQueryBuilder('i')
          .select(['i.moveId AS moveId', 'i.state AS state', 'COUNT(*) AS n'])
          .where('i.moveId IN (:...ids)', { ids: moves.map((m) => m.id) })
          .groupBy('i.moveId')
          .addGroupBy('i.state')
          .getRawMany<{ moveId: number; state: string; n: string }>()
      : [];
    return moves.map((move) => {
      const view = DatabaseMoveReportView.of(move, []);
      for (const row of counts.filter((c) => Number(c.moveId) === move.id)) {
        view.counts[row.state] = Number(row.n);
        view.counts.total! += Number(row.n);
      }
      return view;
    });
  }

  /** Every config file that would change, as a diff (passwords masked), and the preconditions that fail; nothing written. */
  private async plan(installs: Install[], from: Server, to: Server): Promise<DatabaseMovePlanView> {
    const problems = await this.checks.problems(installs, to);
    const homes = await this.homes.of(installs);
    const planned = await mapLimited(installs, PLANS_AT_ONCE, async (install) => {
      const context = await this.steps.loadContext(install.id);
      const files: ConfigFileDiffView[] = [];
      for (const server of (homes.get(install.id) ?? []).filter((s) => s.state !== 'down')) {
        const executor = this.access.executorFor(server);
        for (const file of await this.steps.renderedConfig({ ...context, dbServer: to }, server)) {
          const before = (await executor.exists(server, file.path)) ? (await executor.readFile(server, file.path)).toString('utf8') : '';
          const diff = unifiedDiff(before, file.text, { fromFile: `${server.hostname}:${file.path}`, toFile: `${server.hostname}:${file.path}` });
          if (diff !== '') files.push(Object.assign(new ConfigFileDiffView(), { server: server.hostname, path: file.path, diff: redactSecrets(diff) }));
        }
      }
      return Object.assign(new DatabaseMovePlanInstall(), { installId: install.id, fsName: install.fsName, files });
    });
    return Object.assign(new DatabaseMovePlanView(), { dryRun: true as const, from: from.hostname, to: to.hostname, problems, installs: planned });
  }

  private async databaseServer(id: number): Promise<Server> {
    const server = await this.dataSource.getRepository(Server).findOneBy({ id });
    if (!server) throw new NotFoundError('server', id);
    if (!server.roles.includes('database')) throw databaseMoveErrors.notDatabase(server);
    return server;
  }

  private async installsOn(server: Server): Promise<Install[]> {
    return this.dataSource.getRepository(Install).find({ where: { dbServerId: server.id, status: 'live' }, order: { id: 'ASC' } });
  }

  private async refuseRunning(): Promise<void> {
    const running = await this.dataSource.getRepository(DatabaseMove).findOne({ where: { state: 'running' } });
    if (running) throw databaseMoveErrors.running(running.id);
  }
}
