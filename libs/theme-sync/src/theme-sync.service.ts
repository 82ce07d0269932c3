import { posix } from 'node:path';
import { Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, In } from 'typeorm';
import { Install, Server, SharedCodeGroup, ThemeSyncState } from '@app/catalog';
import { CodeReleases, parseManifest, type CodebaseManifest } from '@app/codebases';
import { ServerAccess } from '@app/hosts';
import { HOME_MARKER, homeMarker, homeOn } from '@app/installs';
import { pairKey, planSyncs, type PairState, type SyncCandidate, type SyncPair } from './theme-sync-plan.js';
import { DIGEST_SCRIPT, digestInput, markerMd5, parseDigests, type DigestRequest, type HomeDigest } from './tree-digest.js';

/** Relays running at once in a run (each is two commands, one per server). */
export const THEME_SYNC_CONCURRENCY = 4;
/** A run starts no new relay after this long: what is left waits for the next run (a run must end well within its minute). */
export const THEME_SYNC_BUDGET_MS = 40_000;
/** A pair whose last attempt failed, or whose home there lacks the marker, is tried again after this long. */
export const THEME_SYNC_RETRY_AFTER_MS = 5 * 60_000;
/** One relay of one path: a first sync of a large theme takes a while. */
const RELAY_TIMEOUT_MS = 10 * 60_000;
/** The fingerprint of every home of one server. */
const DIGEST_TIMEOUT_MS = 120_000;

export interface ThemeSyncRun {
  /** Live installs with copied paths and other servers. */
  installs: number;
  /** Servers fingerprinted (one command each). */
  fingerprinted: number;
  unchanged: number;
  /** Pairs that failed or were refused a short while ago, not tried in this run. */
  retrying: number;
  synced: number;
  /** rsync relays run (one per copied path of a synced pair). */
  relays: number;
  /** Pairs left for later: the server is down or did not answer. */
  skipped: number;
  /** Pairs not synced because the home there is not this install's (no marker, or another's). */
  refused: number;
  failed: number;
  /** Pairs left for the next run (the run's budget ran out). */
  deferred: number;
  ms: number;
}

export interface ThemeSyncOptions {
  signal?: AbortSignal;
  log?: (line: string) => void;
  budgetMs?: number;
  /** Default THEME_SYNC_RETRY_AFTER_MS. */
  retryAfterMs?: number;
}

/** What a run's relays share. */
interface RunState {
  installs: Map<number, Install>;
  servers: Map<number, Server>;
  digests: Map<number, HomeDigest | string>;
  copies: Map<number, string[]>;
  states: Map<string, ThemeSyncState>;
  result: ThemeSyncRun;
  log: (line: string) => void;
  signal?: AbortSignal;
}

interface CandidateRow {
  installId: number;
  serverId: number;
}

/**
 * The seed's cron_slave_sync: each live install's copied paths (the
 * manifest's `copy`: theme, snippets, asset theme, which customers change on
 * the master over FTP) made the same on its other servers, only where they
 * changed. One command per master fingerprints all its installs' copied
 * trees (stat data, no file read); a pair (install, other server) whose
 * digest differs from the one last synced there is synced with the rsync
 * relay, path by path, after one command per other server checked the
 * home there is this install's (its marker). Per copied directory the relay
 * is `rsync -a --delete --safe-links --checksum`: the directory is the install's, so
 * what the master no longer has is deleted inside it and nowhere else;
 * links are copied as links, never followed, and links pointing out of the
 * directory are not copied; files are compared by content, as the digest
 * (ctime) sees changes that keep size and mtime. A path the master lacks is left alone on the
 * others. A server that is down keeps its old digest and is caught up
 * when it is back.
 */
@Injectable()
export class ThemeSync {
  private readonly logger = new Logger('ThemeSync');

  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly access: ServerAccess,
    private readonly releases: CodeReleases,
  ) {}

  async run(options: ThemeSyncOptions = {}): Promise<ThemeSyncRun> {
    const started = Date.now();
    const log = options.log ?? (() => undefined);
    const result: ThemeSyncRun = { installs: 0, fingerprinted: 0, unchanged: 0, retrying: 0, synced: 0, relays: 0, skipped: 0, refused: 0, failed: 0, deferred: 0, ms: 0 };
    const rows = (await this.dataSource.query(
      `SELECT i.id AS installId, s.server_id AS serverId
         FROM installs i
         JOIN install_servers s ON s.install_id = i.id
        WHERE i.status = 'live' AND i.master_server_id IS NOT NULL AND s.server_id <> i.master_server_id AND s.state = 'active'
        ORDER BY i.id, s.server_id`,
    )) as CandidateRow[];
    if (rows.length === 0) return this.done(result, started, log);
    const installIds = [...new Set(rows.map((r) => Number(r.installId)))];
    const installs = new Map((await this.dataSource.getRepository(Install).find({ where: { id: In(installIds) } })).map((i) => [i.id, i]));
    const servers = new Map((await this.dataSource.getRepository(Server).find()).map((s) => [s.id, s]));
    const copies = await this.copiedPaths([...installs.values()], log);

    const targetsOf = groupBy(rows, (r) => Number(r.installId));
    const candidates: SyncCandidate[] = [];
    for (const id of installIds) {
      const install = installs.get(id);
      const paths = copies.get(id) ?? [];
      if (!install || paths.length === 0) continue;
      candidates.push({ installId: id, masterId: install.masterServerId!, targetIds: targetsOf.get(id)!.map((r) => Number(r.serverId)) });
    }
    result.installs = candidates.length;

    // One command per master: every install's copied trees fingerprinted.
    const digests = new Map<number, HomeDigest | string>();
    const byMaster = groupBy(candidates, (c) => c.masterId);
    for (const [masterId, list] of byMaster) {
      const master = servers.get(masterId);
      if (!master || master.state === 'down') {
        for (const c of list) digests.set(c.installId, `its master ${master?.hostname ?? masterId} is down`);
        continue;
      }
      try {
        const found = await this.fingerprint(master, list.map((c) => ({ installId: c.installId, home: homeOn(master, installs.get(c.installId)!), paths: copies.get(c.installId)! })), options.signal);
        result.fingerprinted++;
        for (const c of list) digests.set(c.installId, found.get(c.installId) ?? 'not answered');
      } catch (error) {
        log(`${master.hostname}: not fingerprinted (${(error as Error).message}); its installs wait for a later run`);
        for (const c of list) digests.set(c.installId, `its master ${master.hostname} did not answer`);
      }
    }

    const states = new Map<string, ThemeSyncState>();
    for (const s of await this.dataSource.getRepository(ThemeSyncState).find({ where: { installId: In(candidates.map((c) => c.installId)) } })) states.set(pairKey(s.installId, s.serverId), s);
    const plan = planSyncs(candidates, digests, (id) => markerMd5(homeMarker(installs.get(id)!)), states as Map<string, PairState>, (id) => servers.get(id)?.state === 'down', {
      now: Date.now(),
      afterMs: options.retryAfterMs ?? THEME_SYNC_RETRY_AFTER_MS,
    });
    result.unchanged = plan.unchanged;
    result.retrying = plan.retrying;
    result.skipped = plan.down.length;
    for (const { installId, why } of plan.notLooked) {
      log(`install ${installId}: not synced (${why})`);
      if (why.includes('marker')) result.refused++;
    }
    for (const targetId of new Set(plan.down.map((d) => d.targetId))) log(`${servers.get(targetId)?.hostname ?? targetId} is down: ${plan.down.filter((d) => d.targetId === targetId).length} install(s) caught up when it is back`);

    // One command per other server with work: is each home there this install's?
    const verified: SyncPair[] = [];
    for (const [targetId, pairs] of groupBy(plan.pending, (p) => p.targetId)) {
      const target = servers.get(targetId)!;
      let markers: Map<number, HomeDigest>;
      try {
        markers = await this.fingerprint(target, pairs.map((p) => ({ installId: p.installId, home: homeOn(target, installs.get(p.installId)!), paths: [] })), options.signal);
      } catch (error) {
        log(`${target.hostname} did not answer (${(error as Error).message}): ${pairs.length} install(s) caught up on a later run`);
        result.skipped += pairs.length;
        continue;
      }
      for (const pair of pairs) {
        const install = installs.get(pair.installId)!;
        if (markers.get(pair.installId)?.markerMd5 === markerMd5(homeMarker(install))) {
          verified.push(pair);
          continue;
        }
        result.refused++;
        const why = `${homeOn(target, install)} on ${target.hostname} lacks this install's marker: not synced there`;
        log(`install ${install.id}: ${why}`);
        await this.record(pair, states, { error: why });
      }
    }

    const deadline = started + (options.budgetMs ?? THEME_SYNC_BUDGET_MS);
    // Pairs in their order (oldest sync first), a few relays at once.
    let next = 0;
    const worker = async () => {
      while (next < verified.length) {
        if (Date.now() > deadline || options.signal?.aborted) return;
        const pair = verified[next++]!;
        await this.syncPair(pair, { installs, servers, digests, copies, states, result, log, signal: options.signal });
      }
    };
    await Promise.all(Array.from({ length: THEME_SYNC_CONCURRENCY }, worker));
    result.deferred = verified.length - next;
    if (result.deferred > 0) log(`${result.deferred} install(s) left for the next run (the run's ${Math.round((options.budgetMs ?? THEME_SYNC_BUDGET_MS) / 1000)} s are used)`);
    return this.done(result, started, log);
  }

  /** One command: the digests of many homes on one server (see DIGEST_SCRIPT). */
  async fingerprint(server: Server, requests: readonly DigestRequest[], signal?: AbortSignal): Promise<Map<number, HomeDigest>> {
    if (requests.length === 0) return new Map();
    const output = await this.access.executorFor(server).mustRun(server, ['perl', '-e', DIGEST_SCRIPT, HOME_MARKER], { input: digestInput(requests), timeoutMs: DIGEST_TIMEOUT_MS, signal });
    return parseDigests(output);
  }

  private async syncPair(pair: SyncPair, run: RunState): Promise<void> {
    const { installs, servers, digests, copies, states, result, log, signal } = run;
    const install = installs.get(pair.installId)!;
    const digest = digests.get(pair.installId) as HomeDigest;
    const paths = copies.get(pair.installId)!;
    const master = servers.get(pair.masterId)!;
    const target = servers.get(pair.targetId)!;
    const home = homeOn(master, install);
    // A home inside the shared code (a misconfigured server) is never a place to sync from or into.
    if ([master, target].some((s) => isUnder(homeOn(s, install), s.sharedCodeRoot))) {
      result.refused++;
      log(`install ${install.id}: its home lies inside the shared code on ${master.hostname} or ${target.hostname}: not synced`);
      return;
    }
    // A path the master lacks is left as it is elsewhere (never deleted for being absent); one reached through a link is never synced.
    const skipped = new Set([...digest.missing, ...digest.unsafe]);
    for (const p of digest.unsafe) log(`install ${install.id}: ${p} on ${master.hostname} is reached through a link or a non-directory: not synced`);
    for (const p of digest.missing) log(`install ${install.id}: ${p} is not on ${master.hostname}: left as it is on ${target.hostname}`);
    try {
      for (const path of paths.filter((p) => !skipped.has(p))) {
        if (signal?.aborted) throw new Error('the run was stopped');
        result.relays++;
        await this.access.sync(master, target, posix.join(home, path), { safeLinks: true, checksum: true, timeoutMs: RELAY_TIMEOUT_MS });
      }
      result.synced++;
      log(`install ${install.id} (${install.fsName}): ${paths.length - skipped.size} copied path(s) synced from ${master.hostname} to ${target.hostname}`);
      await this.record(pair, states, { digest: pair.digest, error: digest.unsafe.length ? `not synced (reached through a link): ${digest.unsafe.join(', ')}` : null });
    } catch (error) {
      result.failed++;
      const why = (error as Error).message;
      log(`install ${install.id} (${install.fsName}) to ${target.hostname} failed: ${why}`);
      this.logger.warn(`theme sync of install ${install.id} to ${target.hostname} failed: ${why}`);
      await this.record(pair, states, { error: why });
    }
  }

  /** A synced pair's digest (written only when it changed), or a failure (the digest kept: the pair is tried again). */
  private async record(pair: SyncPair, states: Map<string, ThemeSyncState>, outcome: { digest?: string; error: string | null }): Promise<void> {
    const repo = this.dataSource.getRepository(ThemeSyncState);
    const now = new Date();
    const fields: Pick<Partial<ThemeSyncState>, 'digest' | 'syncedAt' | 'lastError' | 'failedAt'> =
      outcome.digest !== undefined
        ? { digest: outcome.digest, syncedAt: now, lastError: outcome.error?.slice(0, 1024) ?? null, failedAt: null }
        : { lastError: outcome.error!.slice(0, 1024), failedAt: now };
    const key = pairKey(pair.installId, pair.targetId);
    const known = states.get(key);
    if (known) {
      await repo.update({ id: known.id }, fields);
      Object.assign(known, fields);
      return;
    }
    const row = repo.create({ installId: pair.installId, serverId: pair.targetId, digest: null, syncedAt: null, lastError: null, failedAt: null, ...fields });
    states.set(key, await repo.save(row));
  }

  /** Each install's copied paths, from the manifest of the release its home points at; an install whose manifest cannot be read is said and left out. */
  private async copiedPaths(installs: readonly Install[], log: (line: string) => void): Promise<Map<number, string[]>> {
    const groups = new Map((await this.dataSource.getRepository(SharedCodeGroup).find({ where: { id: In([...new Set(installs.map((i) => i.sharedCodeGroupId).filter((g): g is number => g !== null))]) } })).map((g) => [g.id, g]));
    const manifests = new Map<string, Promise<CodebaseManifest>>();
    const paths = new Map<number, string[]>();
    for (const install of installs) {
      const group = install.sharedCodeGroupId !== null ? groups.get(install.sharedCodeGroupId) : undefined;
      if (!group) continue;
      const revision = install.codeRevision ?? group.revision;
      const key = `${group.id} ${revision}`;
      // A group not cloned through the release layout (no revision yet) has only its own manifest.
      if (!manifests.has(key)) manifests.set(key, revision === null ? parseGroupManifest(group) : this.releases.recordedManifest(group, revision));
      try {
        paths.set(install.id, [...(await manifests.get(key)!).copy]);
      } catch (error) {
        log(`install ${install.id} (${install.fsName}): its release's manifest cannot be read (${error instanceof Error ? error.message : String(error)}): not synced`);
      }
    }
    return paths;
  }

  private done(result: ThemeSyncRun, started: number, log: (line: string) => void): ThemeSyncRun {
    result.ms = Date.now() - started;
    log(
      `${result.installs} install(s) on several servers, ${result.fingerprinted} server(s) fingerprinted; ${result.unchanged} unchanged, ${result.retrying} retried later, ${result.synced} synced (${result.relays} relays), ` +
        `${result.skipped} waiting for a server, ${result.refused} refused, ${result.failed} failed, ${result.deferred} deferred in ${result.ms} ms`,
    );
    return result;
  }
}

function isUnder(path: string, root: string): boolean {
  const r = posix.normalize(root).replace(/\/+$/, '');
  return path === r || path.startsWith(`${r}/`);
}

function groupBy<T, K>(items: readonly T[], key: (item: T) => K): Map<K, T[]> {
  const groups = new Map<K, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = groups.get(k) ?? [];
    list.push(item);
    groups.set(k, list);
  }
  return groups;
}

async function parseGroupManifest(group: SharedCodeGroup): Promise<CodebaseManifest> {
  if (!group.manifest) throw new Error(`code group ${group.name} has no manifest`);
  return parseManifest(group.manifest);
}
