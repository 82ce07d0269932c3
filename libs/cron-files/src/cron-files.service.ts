import { posix } from 'node:path';
import { Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, In } from 'typeorm';
import { AuditEventRepository, Install, InstallServer, Server, SharedCodeGroup, type InstallStatus } from '@app/catalog';
import { CodeReleases, type CodebaseManifest } from '@app/codebases';
import { ServerAccess } from '@app/hosts';
import { CRON_FILE_MODE, cronFileName, homeOn, InstallUsers, renderCronFile } from '@app/installs';
import { planCronDirectory, type CronRestore, type CronStray, type WantedCronFile } from './cron-files-plan.js';
import { LISTING_SCRIPT, parseListing, type CronListing } from './cron-listing.js';

/** Servers listed at once. */
export const CRON_FILES_CONCURRENCY = 4;
/** Repairs (a write or a removal, one command each) at once: a server's pooled SSH connection carries them as channels. */
export const CRON_REPAIR_CONCURRENCY = 4;
/** One server's listing (one process, however many installs it holds). */
const LISTING_TIMEOUT_MS = 60_000;
/** Statuses whose files a job is making or unmaking (the build, a restore, the removal): the task keeps out of them. */
const IN_FLIGHT: readonly InstallStatus[] = ['preparing', 'building', 'removing'];

export interface CronFilesRun {
  /** Servers listed (one command each). */
  servers: number;
  /** Servers down in the inventory or not answering: looked at again next run. */
  skipped: number;
  unchanged: number;
  restored: number;
  removed: number;
  /** Files left to a job at work on their install (or whose release cannot be rendered): neither written nor removed. */
  held: number;
  /** Entries named like an install's cron file that the engine did not make: never touched. */
  foreign: number;
  failed: number;
  ms: number;
}

export interface CronFilesOptions {
  signal?: AbortSignal;
  log?: (line: string) => void;
}

/** What the catalog says each server must have. */
interface CatalogView {
  wanted: Map<number, WantedCronFile[]>;
  held: Map<number, Set<string>>;
}

/** What a run's repairs share. */
interface RunState {
  result: CronFilesRun;
  log: (line: string) => void;
  signal?: AbortSignal;
  /** The installs and rows the repairs are about, read again just before them. */
  installs: Map<number, Install>;
  rows: InstallServer[];
  /** Servers not listed in this run (down, not answering): a directory they might share is not known. */
  unlisted: Server[];
}

/** One cron directory: the servers naming it (several rows of one machine can) and what it holds. */
interface Directory {
  servers: Server[];
  listing: CronListing;
}

/**
 * The seed's cron_installs, as a check: every server's cron files (one per
 * install per server, `shop-<fs name>` in its `cronDir`, rendered as the
 * build writes them) against the catalog. One command per server lists and
 * hashes the files named like the engine's; only where they differ does
 * anything run: a missing or changed file of a live install active on the
 * server is written again (atomically, 0644, the engine's owner), a file the
 * engine made (its marker line names the install its name is for) whose
 * install is failed, removed or no longer on the server is removed.
 * Installs a job is at work on (building, removing, a handler coming or
 * going) are left to it, and anything else in the directory is never
 * touched. Each repair is confirmed against a fresh read of the catalog
 * first, logged and audited.
 */
@Injectable()
export class CronFiles {
  private readonly logger = new Logger('CronFiles');

  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly access: ServerAccess,
    private readonly users: InstallUsers,
    private readonly audit: AuditEventRepository,
    private readonly releases: CodeReleases,
  ) {}

  async run(options: CronFilesOptions = {}): Promise<CronFilesRun> {
    const started = Date.now();
    const log = options.log ?? (() => undefined);
    const result: CronFilesRun = { servers: 0, skipped: 0, unchanged: 0, restored: 0, removed: 0, held: 0, foreign: 0, failed: 0, ms: 0 };
    const servers = await this.dataSource.getRepository(Server).find({ order: { id: 'ASC' } });
    const view = await this.catalogView(servers, log);

    const listings = new Map<number, CronListing>();
    await eachLimit(servers, CRON_FILES_CONCURRENCY, async (server) => {
      if (server.state === 'down') {
        result.skipped++;
        return log(`${server.hostname} is down: its cron files are checked once it is back`);
      }
      try {
        listings.set(server.id, await this.list(server, options.signal));
        result.servers++;
      } catch (error) {
        if (options.signal?.aborted) throw error;
        result.skipped++;
        log(`${server.hostname} did not answer (${(error as Error).message}): its cron files are checked next run`);
      }
    });

    const restores: { directory: Directory; restore: CronRestore }[] = [];
    const strays: { directory: Directory; stray: CronStray }[] = [];
    for (const directory of this.directories(servers, listings)) {
      const { servers: named, listing } = directory;
      const where = named.map((s) => s.hostname).join(', ');
      const wanted = named.flatMap((s) => view.wanted.get(s.id) ?? []);
      const held = new Set(named.flatMap((s) => [...(view.held.get(s.id) ?? [])]));
      if (!listing.present) {
        if (wanted.length > 0) {
          result.failed += wanted.length;
          log(`${where}: ${named[0]!.cronDir} is not a directory: ${wanted.length} cron file(s) cannot be written`);
        }
        continue;
      }
      const plan = planCronDirectory({ listing, wanted, held });
      result.unchanged += plan.unchanged;
      result.held += held.size + plan.conflicts.length;
      result.foreign += plan.foreign.length;
      if (plan.foreign.length > 0) log(`${where}: left alone (named like an install's cron file, not made by the engine): ${plan.foreign.join(', ')}`);
      for (const name of plan.conflicts) log(`${where}: ${name} is wanted with different content by servers sharing ${named[0]!.cronDir}: left as it is`);
      restores.push(...plan.restores.map((restore) => ({ directory, restore })));
      strays.push(...plan.strays.map((stray) => ({ directory, stray })));
    }

    if (restores.length > 0 || strays.length > 0) {
      const fresh = await this.freshRead([...restores.map((r) => r.restore.installId), ...strays.map((s) => s.stray.installId)]);
      const state: RunState = { result, log, signal: options.signal, ...fresh, unlisted: servers.filter((s) => !listings.has(s.id)) };
      const repairs = [...restores.map(({ directory, restore }) => () => this.restore(state, directory, restore)), ...strays.map(({ directory, stray }) => () => this.removeStray(state, directory, stray))];
      await eachLimit(repairs, CRON_REPAIR_CONCURRENCY, (repair) => repair());
    }
    return this.done(result, started, log);
  }

  /** The listing of one server's cron directory (LISTING_SCRIPT). */
  async list(server: Server, signal?: AbortSignal): Promise<CronListing> {
    const output = await this.access.executorFor(server).mustRun(server, ['perl', '-e', LISTING_SCRIPT, server.cronDir], { timeoutMs: LISTING_TIMEOUT_MS, signal });
    return parseListing(output);
  }

  /**
   * Every install in the statuses that have cron files, with its rows: a
   * live install's active rows want their file (rendered from the manifest
   * of its release); rows of an install a job is at work on, or of one
   * whose release cannot be rendered, are held.
   */
  private async catalogView(servers: Server[], log: (line: string) => void): Promise<CatalogView> {
    const view: CatalogView = { wanted: new Map(), held: new Map() };
    const installs = new Map((await this.dataSource.getRepository(Install).find({ where: { status: In(['live', ...IN_FLIGHT]) } })).map((i) => [i.id, i]));
    if (installs.size === 0) return view;
    const rows = (await this.dataSource
      .getRepository(InstallServer)
      .createQueryBuilder('s')
      .innerJoin(Install, 'i', 'i.id = s.installId')
      .select(['s.installId AS installId', 's.serverId AS serverId', 's.state AS state'])
      .where('i.status IN (:...statuses)', { statuses: ['live', ...IN_FLIGHT] })
      .orderBy('s.id', 'ASC')
      .getRawMany<{ installId: number; serverId: number; state: InstallServer['state'] }>()).map((r) => ({ installId: Number(r.installId), serverId: Number(r.serverId), state: r.state }));
    const byId = new Map(servers.map((s) => [s.id, s]));
    const manifests = await this.manifestsOf([...installs.values()].filter((i) => i.status === 'live'), log);
    for (const row of rows) {
      const install = installs.get(row.installId);
      const server = byId.get(row.serverId);
      if (!install || !server) continue;
      const name = cronFileName(install);
      const manifest = manifests.get(install.id);
      if (install.status !== 'live' || row.state !== 'active' || !manifest) {
        getOrSet(view.held, server.id, () => new Set<string>()).add(name);
        continue;
      }
      const content = renderCronFile(install, manifest.crons ?? [], homeOn(server, install), this.users.phpOwner(server, install).user);
      getOrSet(view.wanted, server.id, () => []).push({ serverId: server.id, installId: install.id, name, content });
    }
    return view;
  }

  /** Each live install's manifest: its release's (`code_revision`, else its group's), parsed once per release; an install without one is logged and left out. */
  private async manifestsOf(installs: Install[], log: (line: string) => void): Promise<Map<number, CodebaseManifest>> {
    const groups = new Map((await this.dataSource.getRepository(SharedCodeGroup).find()).map((g) => [g.id, g]));
    const parsed = new Map<string, Promise<CodebaseManifest>>();
    const manifestOf = (group: SharedCodeGroup, revision: string) => getOrSet(parsed, `${group.id}\0${revision}`, () => this.releases.recordedManifest(group, revision));
    const out = new Map<number, CodebaseManifest>();
    for (const install of installs) {
      const group = install.sharedCodeGroupId === null ? undefined : groups.get(install.sharedCodeGroupId);
      const revision = install.codeRevision ?? group?.revision ?? null;
      let manifest: CodebaseManifest | null = null;
      let why = 'no code group or release';
      if (group && revision) {
        try {
          manifest = await manifestOf(group, revision);
        } catch (error) {
          why = error instanceof Error ? error.message : String(error);
        }
      }
      if (manifest) out.set(install.id, manifest);
      else log(`install ${install.id} (${install.fsName}): no manifest for its release ${revision ?? '(none)'} (${why}): its cron files are left as they are`);
    }
    return out;
  }

  /** Servers grouped by the directory their listing names (rows of one machine sharing a cronDir are one directory). */
  private directories(servers: Server[], listings: Map<number, CronListing>): Directory[] {
    const out = new Map<string, Directory>();
    for (const server of servers) {
      const listing = listings.get(server.id);
      if (!listing) continue;
      const key = listing.identity ?? `server:${server.id}`;
      const known = out.get(key);
      if (known) known.servers.push(server);
      else out.set(key, { servers: [server], listing });
    }
    return [...out.values()];
  }

  /** The installs and rows the repairs are about, as the catalog has them now (a build or a removal may have started since the run's first read). */
  private async freshRead(installIds: number[]): Promise<Pick<RunState, 'installs' | 'rows'>> {
    const ids = [...new Set(installIds)];
    const installs = new Map((await this.dataSource.getRepository(Install).find({ where: { id: In(ids) } })).map((i) => [i.id, i]));
    const rows = await this.dataSource.getRepository(InstallServer).find({ where: { installId: In(ids) } });
    return { installs, rows };
  }

  private async restore({ result, log, signal, installs, rows }: RunState, directory: Directory, restore: CronRestore): Promise<void> {
    const server = directory.servers.find((s) => s.id === restore.serverId)!;
    const install = installs.get(restore.installId);
    const row = rows.find((r) => r.installId === restore.installId && r.serverId === server.id);
    if (install?.status !== 'live' || row?.state !== 'active') {
      result.held++;
      return log(`${server.hostname}: ${restore.name} not restored: install ${restore.installId} changed meanwhile (${install?.status ?? 'gone'}), left to its job`);
    }
    const path = posix.join(server.cronDir, restore.name);
    try {
      await this.access.executorFor(server).writeFile(server, path, restore.content, { mode: CRON_FILE_MODE, signal });
    } catch (error) {
      if (signal?.aborted) throw error;
      result.failed++;
      return log(`${server.hostname}: ${path} could not be restored: ${(error as Error).message}`);
    }
    result.restored++;
    log(`${server.hostname}: ${path} restored (${restore.drift.join(', ')})`);
    await this.audit.record({
      actor: 'cron-files', via: 'cron', action: 'install.crons.restored', targetType: 'install', targetId: restore.installId,
      details: { serverId: server.id, hostname: server.hostname, path, drift: restore.drift },
    });
  }

  private async removeStray({ result, log, signal, installs, rows, unlisted }: RunState, directory: Directory, stray: CronStray): Promise<void> {
    const server = directory.servers[0]!;
    const path = posix.join(server.cronDir, stray.name);
    const install = installs.get(stray.installId);
    // A marker naming an install this catalog does not have (or with another name) is not this engine's: another catalog's, or a copy.
    if (!install || install.fsName !== stray.fsName) {
      result.foreign++;
      return log(`${server.hostname}: ${path} names install ${stray.installId} (${stray.fsName}), which this catalog does not have: left alone`);
    }
    const onServer = rows.some((r) => r.installId === install.id && directory.servers.some((s) => s.id === r.serverId));
    if (IN_FLIGHT.includes(install.status) || (install.status === 'live' && onServer)) {
      result.held++;
      return log(`${server.hostname}: ${path} kept: install ${install.id} is ${install.status}${onServer ? ' here' : ''} now`);
    }
    // A server of the install not listed this run may be another row of this machine naming this very directory: unknown, so kept.
    const maybeShared = unlisted.find((s) => s.cronDir === server.cronDir && rows.some((r) => r.installId === install.id && r.serverId === s.id));
    if (install.status === 'live' && maybeShared) {
      result.held++;
      return log(`${server.hostname}: ${path} kept: ${maybeShared.hostname} (not listed this run) runs install ${install.id} and names the same cron directory`);
    }
    const why = install.status === 'live' ? `install ${install.id} is no longer on ${server.hostname}` : `install ${install.id} is ${install.status}`;
    try {
      await this.access.executorFor(server).remove(server, path, { signal });
    } catch (error) {
      if (signal?.aborted) throw error;
      result.failed++;
      return log(`${server.hostname}: ${path} could not be removed: ${(error as Error).message}`);
    }
    result.removed++;
    log(`${server.hostname}: ${path} removed (${why})`);
    await this.audit.record({
      actor: 'cron-files', via: 'cron', action: 'install.crons.removed', targetType: 'install', targetId: install.id,
      details: { serverId: server.id, hostname: server.hostname, path, why, status: install.status },
    });
  }

  private done(result: CronFilesRun, started: number, log: (line: string) => void): CronFilesRun {
    result.ms = Date.now() - started;
    const line = `${result.servers} server(s) listed, ${result.skipped} skipped; ${result.unchanged} unchanged, ${result.restored} restored, ${result.removed} removed, ${result.held} left to jobs at work, ${result.foreign} not the engine's left alone, ${result.failed} failed (${result.ms} ms)`;
    log(line);
    if (result.restored + result.removed + result.failed > 0) this.logger.log(line);
    return result;
  }
}

function getOrSet<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  let value = map.get(key);
  if (value === undefined) map.set(key, (value = make()));
  return value;
}

/** Runs `work` over `items`, at most `limit` at once; the first failure rejects once every started one has ended. */
async function eachLimit<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  const settled = await Promise.allSettled(Array.from({ length: Math.min(limit, items.length) }, lane));
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) throw (failed as PromiseRejectedResult).reason;
}
