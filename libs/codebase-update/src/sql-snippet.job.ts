import { Inject, Injectable } from '@nestjs/common';
import { DataSource, In } from 'typeorm';
import { CodeUpdate, CodeUpdateItem, DatabaseUpdate, Install, Server, SharedCodeGroup } from '@app/catalog';
import { parseManifest, type CodebaseManifest } from '@app/codebases';
import { redactSecrets, registerSecrets } from '@app/common';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { prepareSql, splitSql, SqlStatementError, TenantDatabases } from '@app/databases';
import { decryptSecret } from '@app/installs';
import { defineJobKind, JobHandler, type JobContext } from '@app/queue';

export interface CodeUpdatePayload {
  updateId: number;
}

/** Runs an SQL snippet's items (one per install); a re-run after a killed worker resumes them. */
export const CODE_UPDATE_SQL_SNIPPET = defineJobKind<CodeUpdatePayload>('code-update.sql-snippet', { maxAttempts: 5, backoff: { baseMs: 2_000, maxMs: 60_000 } });

/** One job at a time per code update. */
export const codeUpdateResourceKey = (updateId: number) => `codeupdate:${updateId}`;

/** What a snippet is recorded as in database_updates. */
export const snippetFile = (name: string) => `snippet:${name}`;

/** A group's manifest SQL settings ({} when it declares none), or why there are none (no manifest, or one that does not parse). */
export async function codeGroupManifestSql(group: SharedCodeGroup): Promise<{ sql: Partial<NonNullable<CodebaseManifest['sql']>> } | { missing: string }> {
  if (!group.manifest) return { missing: `code group ${group.name} has no manifest` };
  try {
    return { sql: (await parseManifest(group.manifest)).sql ?? {} };
  } catch (error) {
    return { missing: `the manifest of code group ${group.name} does not parse: ${error instanceof Error ? error.message : String(error)}` };
  }
}

const ENDED = new Set(['done', 'failed', 'skipped', 'rolled-back']);

/**
 * The parent job of an SQL snippet: each install's item with at most the
 * update's concurrency at once, each as the install's own database user.
 *
 * Resumable: a re-run (a killed worker's job reclaimed) skips the items that
 * ended (done, failed, skipped) and runs the pending and running ones. An
 * item's success is recorded (database_updates row and the item `done`) in
 * one catalog transaction right after the tenant database committed the
 * snippet; a row of this job for the install counts as done on a re-run.
 * What stays is an at-least-once window: a worker killed after the tenant
 * database ran the snippet but before that catalog transaction committed
 * leaves the item `running` with nothing recorded, and the re-run runs the
 * snippet on that install again. A snippet that cannot bear a second run
 * (an INSERT without a key) is best written idempotently
 * (INSERT IGNORE, CREATE TABLE IF NOT EXISTS, UPDATE to a value).
 */
@Injectable()
export class SqlSnippetJob {
  constructor(
    private readonly dataSource: DataSource,
    private readonly tenants: TenantDatabases,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
  ) {}

  @JobHandler(CODE_UPDATE_SQL_SNIPPET)
  async run({ updateId }: CodeUpdatePayload, job: JobContext): Promise<void> {
    const updates = this.dataSource.getRepository(CodeUpdate);
    const update = await updates.findOneBy({ id: updateId });
    if (!update) return job.log(`code update ${updateId} is gone`);
    if (update.state !== 'planned' && update.state !== 'running') return job.log(`code update ${updateId} is ${update.state} already`);
    if (update.state === 'planned') await updates.update({ id: updateId }, { state: 'running', startedAt: new Date() });
    const items = await this.dataSource.getRepository(CodeUpdateItem).find({ where: { updateId }, order: { installId: 'ASC' } });
    const todo = items.filter((i) => !ENDED.has(i.state));
    const resumed = todo.filter((i) => i.state === 'running').length;
    job.log(`snippet ${update.snippetName} on ${items.length} install(s): ${todo.length} to run${items.length > todo.length ? `, ${items.length - todo.length} ended in an earlier run` : ''}${resumed ? ` (${resumed} interrupted: run again)` : ''}`);

    const context = await this.contextOf(todo.map((i) => i.installId));
    let next = 0;
    const worker = async () => {
      while (next < todo.length) {
        job.signal.throwIfAborted();
        await this.runItem(update, todo[next++]!, context, job);
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(update.concurrency, todo.length)) }, worker));
    job.signal.throwIfAborted();

    const ended = await this.dataSource.getRepository(CodeUpdateItem).find({ where: { updateId } });
    const failed = ended.filter((i) => i.state === 'failed').map((i) => i.installId);
    const counts = ['done', 'skipped', 'failed'].map((s) => `${ended.filter((i) => i.state === s).length} ${s}`).join(', ');
    await updates.update(
      { id: updateId },
      { state: failed.length > 0 ? 'failed' : 'done', finishedAt: new Date(), error: failed.length > 0 ? `failed on install(s) ${failed.join(', ')}`.slice(0, 1024) : null },
    );
    job.log(`snippet ${update.snippetName}: ${counts}`);
  }

  /** Installs, their groups' SQL settings and database servers, loaded once. */
  private async contextOf(installIds: number[]) {
    const m = this.dataSource.manager;
    const installs = new Map((await m.find(Install, { where: { id: In(installIds) } })).map((i) => [i.id, i]));
    const groups = await m.find(SharedCodeGroup, { where: { id: In([...new Set([...installs.values()].map((i) => i.sharedCodeGroupId).filter((id) => id !== null))]) } });
    const sql = new Map<number, Awaited<ReturnType<typeof codeGroupManifestSql>>>();
    for (const group of groups) sql.set(group.id, await codeGroupManifestSql(group));
    const servers = new Map((await m.find(Server, { where: { id: In([...new Set([...installs.values()].map((i) => i.dbServerId).filter((id) => id !== null))]) } })).map((s) => [s.id, s]));
    return { installs, sql, servers };
  }

  private async runItem(update: CodeUpdate, item: CodeUpdateItem, context: Awaited<ReturnType<SqlSnippetJob['contextOf']>>, job: JobContext): Promise<void> {
    const items = this.dataSource.getRepository(CodeUpdateItem);
    const file = snippetFile(update.snippetName!);
    const startedAt = item.startedAt ?? new Date();
    await items.update({ id: item.id }, { state: 'running', startedAt });
    const end = (fields: Partial<Pick<CodeUpdateItem, 'state' | 'error' | 'errorFile' | 'errorLine' | 'errorStatement' | 'sqlMs' | 'sqlApplied'>>) => items.update({ id: item.id }, { finishedAt: new Date(), ...fields });
    const install = context.installs.get(item.installId);
    if (!install || install.status !== 'live') return void (await end({ state: 'failed', error: `install ${item.installId} is ${install?.status ?? 'gone'}: not live` }));
    const recorded = await this.dataSource.getRepository(DatabaseUpdate).findOneBy({ installId: install.id, file });
    if (recorded && recorded.jobId === update.jobId && recorded.checksum === update.snippetChecksum) {
      // Recorded by this job in the same transaction that would have marked it done: it ran.
      job.log(`install ${install.id}: ran in an earlier run of this job`);
      return void (await end({ state: 'done', sqlApplied: 1 }));
    }
    if (recorded && !update.force) {
      job.log(`install ${install.id}: has ${file} already (job ${recorded.jobId ?? '-'}): skipped`);
      return void (await end({ state: 'skipped', error: `already applied ${recorded.appliedAt.toISOString()} (job ${recorded.jobId ?? '-'})` }));
    }
    const settings = context.sql.get(install.sharedCodeGroupId!);
    const dbServer = context.servers.get(install.dbServerId!);
    if (!settings || 'missing' in settings) return void (await end({ state: 'failed', error: `install ${install.id}: ${settings?.missing ?? 'it has no code group'}` }));
    if (!dbServer) return void (await end({ state: 'failed', error: `install ${install.id}: it has no database server` }));
    const { sql } = settings;
    const password = decryptSecret(this.config.secretsKey, install.dbPasswordEnc);
    // Nothing this job prints, records or fails with shows it (a statement or server message quoting it).
    registerSecrets(password);
    const began = Date.now();
    try {
      // The shop's own user, never the admin: the snippet reaches its database and nothing else.
      await this.tenants.runStatements(dbServer, install.dbName, { user: install.dbUser, password }, file, splitSql(prepareSql(update.snippetSql!, sql)), sql.session ?? {});
    } catch (e) {
      if (job.signal.aborted) throw e;
      const error = e as Error;
      const sqlError = e instanceof SqlStatementError ? e : null;
      job.error(`install ${install.id}: ${error.message}`);
      return void (await end({
        state: 'failed',
        error: redactSecrets(error.message).slice(0, 2048),
        errorFile: sqlError ? sqlError.file.slice(0, 255) : null,
        errorLine: sqlError?.line ?? null,
        errorStatement: sqlError ? redactSecrets(sqlError.statement).slice(0, 65_000) : null,
        sqlMs: Date.now() - began,
      }));
    }
    const sqlMs = Date.now() - began;
    await this.dataSource.transaction(async (m) => {
      const fields = { checksum: update.snippetChecksum!, appliedAt: new Date(), jobId: update.jobId, pluginId: null };
      if (recorded) await m.update(DatabaseUpdate, { id: recorded.id }, fields);
      else await m.insert(DatabaseUpdate, { installId: install.id, file, ...fields });
      await m.update(CodeUpdateItem, { id: item.id }, { state: 'done', sqlApplied: 1, sqlMs, finishedAt: new Date(), error: null, errorFile: null, errorLine: null, errorStatement: null });
    });
    job.log(`install ${install.id} (${install.fsName}): ${file} applied in ${sqlMs} ms`);
  }
}
