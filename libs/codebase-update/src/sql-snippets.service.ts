import { Injectable } from '@nestjs/common';
import { DataSource, In } from 'typeorm';
import { AuditEventRepository, CodeUpdate, CodeUpdateItem, DatabaseUpdate, Install, Server, SharedCodeGroup, type AuditActor } from '@app/catalog';
import { NotFoundError, validateDto } from '@app/common';
import { prepareSql, splitSql, sqlChecksum } from '@app/databases';
import { QueueService } from '@app/queue';
import { codeUpdateErrors } from './codebase-update.errors.js';
import { ApplySqlSnippetDto, MAX_SNIPPET_BYTES, SqlSnippetPlanInstall, SqlSnippetPlanView, SqlSnippetReportView, type SqlSnippetQueuedView } from './dto/sql-snippet.dto.js';
import { CODE_UPDATE_SQL_SNIPPET, codeGroupManifestSql, codeUpdateResourceKey, snippetFile } from './sql-snippet.job.js';

/** How many installs a snippet runs on at once unless told otherwise. */
export const DEFAULT_SNIPPET_CONCURRENCY = 4;

/**
 * The seed's "Specific snippet updating": one SQL snippet run on chosen
 * installs (or every live install of a code group) as each install's own
 * database user, recorded in its database_updates, with a report per
 * install. The API and the `sql:apply` snippet both come here.
 */
@Injectable()
export class SqlSnippetsService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly queue: QueueService,
    private readonly audit: AuditEventRepository,
  ) {}

  /**
   * Checks the request (as the API's DTO does: the CLI comes here without
   * the HTTP pipe), then queues the update, or answers its plan (dryRun).
   * Refused as a whole (nothing created) when an install is unknown, not
   * live, or has the snippet already (unless force).
   */
  async apply(request: ApplySqlSnippetDto, by: AuditActor): Promise<SqlSnippetQueuedView | SqlSnippetPlanView> {
    const dto = await validateDto(ApplySqlSnippetDto, request);
    const bytes = Buffer.byteLength(dto.sql, 'utf8');
    if (bytes > MAX_SNIPPET_BYTES) throw codeUpdateErrors.tooLarge(bytes, MAX_SNIPPET_BYTES);
    const name = dto.name;
    const checksum = sqlChecksum(dto.sql);
    const force = dto.force === true;

    const plan = async (m = this.dataSource.manager) => {
      const installs = await this.chosen(dto, m);
      const groups = await m.find(SharedCodeGroup, { where: { id: In([...new Set(installs.map((i) => i.sharedCodeGroupId!))]) } });
      const statements = new Map<number, number>();
      for (const group of groups) {
        const settings = await codeGroupManifestSql(group);
        if ('missing' in settings) throw codeUpdateErrors.groupNotReady(group.id, installs.filter((i) => i.sharedCodeGroupId === group.id).map((i) => i.id), settings.missing);
        const { sql } = settings;
        let count: number;
        try {
          count = splitSql(prepareSql(dto.sql, sql)).length;
        } catch (e) {
          throw codeUpdateErrors.refusedSql((e as Error).message);
        }
        if (count === 0) throw codeUpdateErrors.emptySnippet();
        statements.set(group.id, count);
      }
      const applied = new Set(
        (await m.find(DatabaseUpdate, { where: { installId: In(installs.map((i) => i.id)), file: snippetFile(name) } })).map((u) => u.installId),
      );
      const servers = new Map((await m.find(Server, { where: { id: In([...new Set(installs.map((i) => i.dbServerId!))]) } })).map((s) => [s.id, s.hostname]));
      return installs.map((i) =>
        Object.assign(new SqlSnippetPlanInstall(), {
          installId: i.id,
          fsName: i.fsName,
          groupId: i.sharedCodeGroupId!,
          dbServer: servers.get(i.dbServerId!) ?? '?',
          statements: statements.get(i.sharedCodeGroupId!)!,
          applied: applied.has(i.id),
        }),
      );
    };

    if (dto.dryRun) {
      return Object.assign(new SqlSnippetPlanView(), { dryRun: true as const, name, checksum, force, installs: await plan() });
    }

    const result = await this.dataSource.transaction(async (m) => {
      const installs = await plan(m);
      const already = installs.filter((i) => i.applied).map((i) => i.installId);
      if (already.length > 0 && !force) throw codeUpdateErrors.alreadyApplied(name, already);
      const update = await m.save(
        m.create(CodeUpdate, {
          kind: 'sql-snippet',
          groupId: dto.groupId ?? null,
          fromRevision: null,
          toRevision: null,
          snippetName: name,
          snippetChecksum: checksum,
          snippetSql: dto.sql,
          force,
          state: 'planned',
          canaryInstallId: null,
          concurrency: DEFAULT_SNIPPET_CONCURRENCY,
          jobId: null,
          requestedBy: by.actor,
          startedAt: null,
          finishedAt: null,
          error: null,
        }),
      );
      const { job } = await this.queue.enqueue(CODE_UPDATE_SQL_SNIPPET, { updateId: update.id }, { manager: m, resourceKey: codeUpdateResourceKey(update.id) });
      await m.update(CodeUpdate, { id: update.id }, { jobId: job.id });
      await m.insert(
        CodeUpdateItem,
        installs.map((i) => ({ updateId: update.id, installId: i.installId, state: 'pending' as const, jobId: job.id })),
      );
      return { updateId: update.id, jobId: job.id, installs: installs.map((i) => i.installId) };
    });
    this.queue.nudge();
    await this.audit.record({
      ...by,
      action: 'sql-snippet.apply',
      targetType: 'code-update',
      targetId: result.updateId,
      details: { name, checksum, force, installs: result.installs, jobId: result.jobId },
    });
    return { updateId: result.updateId, jobId: result.jobId };
  }

  /** The report: the update and one line per install. */
  async report(id: number): Promise<SqlSnippetReportView> {
    const update = await this.dataSource.getRepository(CodeUpdate).findOneBy({ id, kind: 'sql-snippet' });
    if (!update) throw new NotFoundError('sql snippet', id);
    const items = await this.dataSource.getRepository(CodeUpdateItem).find({ where: { updateId: id }, order: { installId: 'ASC' } });
    return SqlSnippetReportView.of(update, items);
  }

  /** The installs asked for: unknown ones 404, any not live 409 (by ids); a group's live ones (by group). */
  private async chosen(dto: ApplySqlSnippetDto, m = this.dataSource.manager): Promise<Install[]> {
    if (dto.installIds) {
      const installs = await m.find(Install, { where: { id: In(dto.installIds) }, order: { id: 'ASC' } });
      const unknown = dto.installIds.filter((id) => !installs.some((i) => i.id === id));
      if (unknown.length > 0) throw codeUpdateErrors.unknownInstalls(unknown.sort((a, b) => a - b));
      const notLive = installs.filter((i) => i.status !== 'live' || i.sharedCodeGroupId === null || i.dbServerId === null);
      if (notLive.length > 0) throw codeUpdateErrors.notLive(notLive);
      return installs;
    }
    const group = await m.findOneBy(SharedCodeGroup, { id: dto.groupId! });
    if (!group) throw new NotFoundError('code group', dto.groupId!);
    const installs = (await m.find(Install, { where: { sharedCodeGroupId: group.id, status: 'live' }, order: { id: 'ASC' } })).filter((i) => i.dbServerId !== null);
    if (installs.length === 0) throw codeUpdateErrors.noLiveInstalls(group.id);
    return installs;
  }
}
