import { performance } from 'node:perf_hooks';
import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import { Metrics } from '@app/metrics';
import { DataSource, In } from 'typeorm';
import { AuditEventRepository, PoolQuarantine, Server } from '@app/catalog';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { ServerAccess } from '@app/hosts';
import { PermanentJobError } from '@app/queue';
import { sha256 } from '../render.js';
import { managesPhp } from './pool-names.js';
import { isPoolFile, newPoolGenerationName, PoolFiles, SENTINEL_POOL, type FpmMaster, type ListenAddress, type PlannedPoolFile, type PoolDirState } from './pool-files.js';
import { PoolInputLoader, webUserOf } from './pool-input.loader.js';
import { PoolRebuilds } from './pool-rebuilds.service.js';
import { poolFile, renderPools } from './pool-render.js';

/** Where a handler's php-fpm master writes its pid when the inventory does not say. */
export const DEFAULT_PHP_FPM_PID_FILE = '/run/php/php-fpm.pid';

export interface PoolApplyOptions {
  log?: (line: string) => void;
}

export interface PoolApplyReport {
  server: string;
  /** The generation now live; null when nothing changed (or the server is not managed). */
  generation: string | null;
  /** Pool files written (changed or new); every other file is a hard link to the live one. */
  written: string[];
  removed: string[];
  filesWritten: number;
  pools: number;
  /** Installs refused on this handler by this run, with why (kept on their live pool, or left out). */
  quarantined: { installId: number; fsName: string; reason: string; keptLastGood: boolean }[];
  released: number[];
  /** What happened to the running master. */
  fpm: 'reloaded' | 'not-running' | 'stale-pid' | 'unchanged' | 'unmanaged';
  timings: { loadMs: number; renderMs: number; inspectMs: number; stageMs: number; testMs: number; reloadMs: number; pruneMs: number; totalMs: number };
}

/** The staged pools were refused and no single install could be blamed, or the reload failed: nothing new went live. */
export class PoolApplyError extends PermanentJobError {
  override name = 'PoolApplyError';
  readonly permanent = true;
}

/** The master did not come back on the new pools: `current` is back on the last good generation (the master started again if it had exited). */
export class PoolReloadError extends PermanentJobError {
  override name = 'PoolReloadError';
  /**
   * Not retried at once: each try would take the handler's pools down again
   * while the master restarts. The reconciler requests the handler again
   * after a while (FAILED_REBUILD_RETRY_MS).
   */
  readonly permanent = true;
}

interface Held {
  installId: number;
  fsName: string;
  reason: string;
  /** Keep the live file (its last good pool) in the new generation, rather than leave the install out. */
  keep: boolean;
}

/**
 * Applies the catalog to one handler's php-fpm pools, never breaking what
 * is live: a generation staged beside the live one (changed files written,
 * the rest hard-linked), `php-fpm -t`, a pool php-fpm refuses quarantined
 * (named, on its last good file or left out) and the rest tested again;
 * then `current` swapped, the master reloaded (SIGUSR2) and waited for
 * until it and every pool listen again; a reload that fails puts
 * `current` back on the last good generation. Callers serialize per
 * handler (the rebuild job's resource key).
 */
@Injectable()
export class PoolPipeline {
  private readonly logger = new Logger('PoolPipeline');

  constructor(
    private readonly dataSource: DataSource,
    private readonly access: ServerAccess,
    private readonly loader: PoolInputLoader,
    private readonly rebuilds: PoolRebuilds,
    private readonly audit: AuditEventRepository,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
    @Optional() private readonly metrics?: Metrics,
  ) {}

  files(server: Server): PoolFiles {
    return new PoolFiles(this.access.executorFor(server), server);
  }

  pidFile(server: Server): string {
    return server.phpFpmPidFile ?? DEFAULT_PHP_FPM_PID_FILE;
  }

  async apply(server: Server, options: PoolApplyOptions = {}): Promise<PoolApplyReport> {
    const started = performance.now();
    let outcome = 'failed';
    try {
      const report = await this.applyOnce(server, options);
      outcome = report.fpm;
      if (report.quarantined.length > 0) this.metrics?.quarantined.inc({ server: server.hostname, kind: 'php-fpm' }, report.quarantined.length);
      return report;
    } finally {
      if (outcome !== 'unmanaged') {
        this.metrics?.rebuilds.inc({ server: server.hostname, kind: 'php-fpm', outcome });
        this.metrics?.rebuildDuration.observe({ server: server.hostname, kind: 'php-fpm' }, (performance.now() - started) / 1000);
      }
    }
  }

  private async applyOnce(server: Server, options: PoolApplyOptions): Promise<PoolApplyReport> {
    const started = performance.now();
    const log = options.log ?? (() => undefined);
    const timings = { loadMs: 0, renderMs: 0, inspectMs: 0, stageMs: 0, testMs: 0, reloadMs: 0, pruneMs: 0, totalMs: 0 };
    const empty = { written: [] as string[], removed: [] as string[] };
    if (!managesPhp(server, this.config)) {
      log(`${server.hostname}: its PHP is not managed by the engine (no php-fpm pool dir): nothing to apply`);
      return this.report(server, null, empty, new Map(), new Map(), new Map(), 0, 'unmanaged', timings);
    }
    const files = this.files(server);
    const pidFile = this.pidFile(server);
    const web = webUserOf(this.config);
    const clone = newPoolGenerationName();
    const [input, state, quarantinedBefore, binary] = await Promise.all([
      this.loader.load(server).then((loaded) => {
        timings.loadMs = performance.now() - started;
        return loaded;
      }),
      files.inspect(clone).then((inspected) => {
        timings.inspectMs = performance.now() - started;
        return inspected;
      }),
      this.dataSource.getRepository(PoolQuarantine).find({ where: { serverId: server.id } }).then((rows) => new Map(rows.map((q) => [q.installId, q]))),
      files.binary(pidFile),
    ]);
    let mark = performance.now();
    const rendered = renderPools(input);
    timings.renderMs = performance.now() - mark;
    const live = state.current;
    const byFile = new Map(input.installs.map((i) => [poolFile(i.fsName), i]));
    const held = new Map<string, Held>();
    for (const r of rendered.refused) held.set(poolFile(r.fsName), { installId: r.id, fsName: r.fsName, reason: r.error, keep: true });
    const desired = rendered.files;
    const digests = new Map<string, string>();
    const digest = (name: string, content: string) => {
      const known = digests.get(name) ?? sha256(content);
      digests.set(name, known);
      return known;
    };

    const plan = () => {
      const list: PlannedPoolFile[] = [];
      const written: string[] = [];
      for (const name of [...new Set([...desired.keys(), ...held.keys()])].sort()) {
        const stays = live !== null && state.hashes.has(name);
        const h = held.get(name);
        if (h) {
          if (h.keep && stays) list.push({ name, link: true });
          continue;
        }
        const content = desired.get(name)!;
        if (stays && state.hashes.get(name) === digest(name, content)) list.push({ name, link: true });
        else {
          list.push({ name, content });
          written.push(name);
        }
      }
      const kept = new Set(list.map((f) => f.name));
      const removed = [...state.hashes.keys()].filter((n) => !kept.has(n));
      return { list, written, removed };
    };
    const listensOf = (list: readonly PlannedPoolFile[]): ListenAddress[] =>
      list.flatMap((f) => {
        const install = byFile.get(f.name);
        if (!install || held.has(f.name)) return [];
        return ['socket' in install.listen ? { socket: install.listen.socket } : { ip: install.listen.ip, port: install.listen.port }];
      });
    const limit = 30 + Math.ceil(desired.size / 100);

    let planned = plan();
    let generation = '';
    let pruned: Promise<void> | null = null;
    for (let round = 1; ; round++) {
      if (round > 200) throw new PoolApplyError(`php-fpm on ${server.hostname}: gave up after 200 rounds of finding refused pools`);
      if (round > 1) planned = plan();
      if (live !== null && planned.written.length === 0 && planned.removed.length === 0) {
        if (round === 1 && state.cloned) await files.remove(state.cloned);
        const row = await this.rebuilds.configRow(server.id);
        if (row.liveGeneration !== live) {
          // A run stopped between its swap and its record: `current` is tested, but the master may not run it yet.
          const reload = await files.swapAndReload(null, null, pidFile, listensOf(planned.list), limit);
          if (reload.outcome === 'exited' || reload.outcome === 'timeout') throw new PoolReloadError(`php-fpm on ${server.hostname} did not come back on ${live} (${reload.outcome})`);
          await this.record(server, held, quarantinedBefore, { generation: live, previous: state.lastGood });
          await files.prune(null, [live, state.lastGood]);
          timings.totalMs = performance.now() - started;
          log(`php-fpm on ${server.hostname}: ${live} was in place but not recorded live: ${reload.outcome}, recorded`);
          return this.report(server, live, planned, held, quarantinedBefore, state.hashes, desired.size, reload.outcome === 'reloaded' ? 'reloaded' : reload.outcome, timings);
        }
        await this.record(server, held, quarantinedBefore, null);
        const stray = state.generations.some((g) => g !== live && g !== state.lastGood && g !== state.cloned);
        if (stray || state.strayTests) await files.prune(null, [live, state.lastGood]);
        timings.totalMs = performance.now() - started;
        log(`php-fpm on ${server.hostname}: nothing changed (generation ${live})`);
        return this.report(server, null, planned, held, quarantinedBefore, state.hashes, desired.size, 'unchanged', timings);
      }
      const cloned = round === 1 && state.cloned === clone;
      generation = round === 1 ? clone : newPoolGenerationName();
      if (pruned) await pruned;
      else {
        const t = performance.now();
        pruned = files.prune(generation, [live, state.lastGood]).then(() => {
          timings.pruneMs = performance.now() - t;
        });
        // Awaited before the swap (its failure fails the apply there); this only keeps it from counting as unhandled meanwhile.
        pruned.catch(() => undefined);
      }
      const testConfig = files.testConfig(generation, web);
      mark = performance.now();
      const filesWritten = await files.stage(generation, live, planned.list, testConfig, { exists: cloned, removed: planned.removed });
      timings.stageMs += performance.now() - mark;
      log(`staged ${generation} on ${server.hostname}: ${filesWritten} pool file(s) written, ${planned.removed.length} removed`);
      if (!binary) {
        await files.remove(generation);
        await pruned;
        throw new PoolApplyError(`no php-fpm binary on ${server.hostname} (php-fpm, php-fpm8.x in the system dirs): pools cannot be tested`);
      }
      // php-fpm stops at the first pool it refuses: each refused one is put back (or out) and the rest tested again, in the same generation.
      let blamed = false;
      for (;;) {
        mark = performance.now();
        const test = await files.test(binary, generation);
        timings.testMs += performance.now() - mark;
        if (test.ok) break;
        const culprit = fpmCulpritOf(test.output, files.dir(generation));
        if (!culprit || !(desired.has(culprit) || held.has(culprit)) || held.get(culprit)?.keep === false) {
          await files.remove(generation);
          await pruned;
          throw new PoolApplyError(`php-fpm -t on ${server.hostname} refused the new pools and no single install is at fault; the live pools are untouched: ${fpmFirstError(test.output)}`);
        }
        const wasWritten = planned.written.includes(culprit);
        const already = held.get(culprit);
        const keep = wasWritten && !already && live !== null && state.hashes.has(culprit);
        const install = byFile.get(culprit)!;
        held.set(culprit, { installId: install.id, fsName: install.fsName, reason: fpmFirstError(test.output), keep: wasWritten && !already });
        log(`php-fpm -t on ${server.hostname} refused ${culprit}: ${fpmFirstError(test.output)}`);
        await files.patch(generation, live, culprit, keep ? 'link' : 'remove', testConfig);
        blamed = true;
      }
      // A port another process listens on: php-fpm -t cannot know, and the reloaded master would exit on it (every pool down).
      const tcp = planned.written.flatMap((file) => {
        const l = byFile.get(file)?.listen;
        return l && !('socket' in l) && !held.has(file) ? [{ file, ip: l.ip, port: l.port }] : [];
      });
      for (const [file, address] of await files.takenPorts(pidFile, tcp)) {
        const install = byFile.get(file)!;
        const keep = live !== null && state.hashes.has(file);
        held.set(file, { installId: install.id, fsName: install.fsName, reason: `its port ${address} is taken by another process on ${server.hostname}`, keep: true });
        log(`pool ${file} on ${server.hostname}: port ${address} taken by another process`);
        await files.patch(generation, live, file, keep ? 'link' : 'remove', testConfig);
        blamed = true;
      }
      if (blamed) {
        planned = plan();
        if (live !== null && planned.written.length === 0 && planned.removed.length === 0) {
          // Every change was refused: the live generation stays; nothing to reload.
          await files.remove(generation);
          continue;
        }
      }
      break;
    }
    await pruned;

    mark = performance.now();
    const reload = await files.swapAndReload(generation, live, pidFile, listensOf(planned.list), limit);
    timings.reloadMs = performance.now() - mark;
    if (reload.outcome === 'exited' || reload.outcome === 'timeout') {
      // Back on what ran before (or on nothing of the engine's), the master started again if the reload killed it.
      const back = await files.swapAndReload(live, live ? state.lastGood : null, pidFile, [], limit, reload.master ?? undefined);
      await this.rebuilds.configRow(server.id, { liveGeneration: live, lastGoodGeneration: live ? state.lastGood : null });
      // Cleanup on the way out: a failed prune is said, never put in place of the reload's failure (the next rebuild prunes again).
      await files.prune(null, [live, state.lastGood, generation]).catch((error: unknown) => log(`pruning ${generation} on ${server.hostname} failed: ${error instanceof Error ? error.message : String(error)}`));
      const why = reload.outcome === 'exited' ? 'the master exited loading it (a port taken, a socket it could not create: see its error log)' : `the master was not back within ${limit} s`;
      throw new PoolReloadError(`php-fpm on ${server.hostname} failed to reload on ${generation}: ${why}; current is back on ${live ?? 'no engine pools'} (master ${back.outcome === 'reloaded' ? (reload.outcome === 'exited' ? 'started again' : 'reloaded') : `${back.outcome}: ${back.detail}`})`);
    }
    const fpm = reload.outcome === 'reloaded' ? 'reloaded' : reload.outcome;
    if (fpm === 'reloaded') log(`php-fpm on ${server.hostname} reloaded on ${generation}`);
    else log(`php-fpm is not running on ${server.hostname} (${fpm === 'stale-pid' ? `its pid file ${pidFile} names another process` : `no master for ${pidFile}`}): nothing to reload; ${generation} is in place and loads when it starts`);
    await this.record(server, held, quarantinedBefore, { generation, previous: live });
    timings.totalMs = performance.now() - started;
    return this.report(server, generation, planned, held, quarantinedBefore, state.hashes, desired.size, fpm, timings);
  }

  /** Quarantine rows, audit, the handler's row: after the swap (or when nothing changed). */
  private async record(server: Server, held: Map<string, Held>, before: Map<number, PoolQuarantine>, swapped: { generation: string; previous: string | null } | null): Promise<void> {
    const heldIds = new Set([...held.values()].map((h) => h.installId));
    const fresh: Held[] = [];
    await this.dataSource.transaction(async (m) => {
      for (const h of held.values()) {
        const reason = `php-fpm on ${server.hostname} refused the pool of install ${h.installId} (${h.fsName}): ${h.reason}`.slice(0, 1024);
        if (before.has(h.installId)) {
          await m.update(PoolQuarantine, { id: before.get(h.installId)!.id }, { reason });
          continue;
        }
        await m.insert(PoolQuarantine, { serverId: server.id, installId: h.installId, reason });
        fresh.push(h);
      }
      const lifted = [...before.keys()].filter((id) => !heldIds.has(id));
      if (lifted.length > 0) await m.delete(PoolQuarantine, { serverId: server.id, installId: In(lifted) });
    });
    for (const h of fresh) {
      this.logger.error({ server: server.hostname, installId: h.installId, fsName: h.fsName }, `pool quarantined on ${server.hostname}: install ${h.installId} (${h.fsName}): ${h.reason}`);
      await this.audit.record({
        actor: 'pool-pipeline',
        via: 'worker',
        action: 'php.quarantine',
        targetType: 'install',
        targetId: h.installId,
        details: { server: server.hostname, fsName: h.fsName, reason: h.reason.slice(0, 500), keptLastGood: h.keep },
      });
    }
    if (swapped) await this.rebuilds.configRow(server.id, { liveGeneration: swapped.generation, lastGoodGeneration: swapped.previous, appliedAt: new Date(), lastError: null });
  }

  private report(
    server: Server,
    generation: string | null,
    planned: { written: string[]; removed: string[] },
    held: Map<string, Held>,
    before: Map<number, PoolQuarantine>,
    live: PoolDirState['hashes'],
    pools: number,
    fpm: PoolApplyReport['fpm'],
    timings: PoolApplyReport['timings'],
  ): PoolApplyReport {
    const heldIds = new Set([...held.values()].map((h) => h.installId));
    return {
      server: server.hostname,
      generation,
      written: planned.written,
      removed: planned.removed,
      filesWritten: planned.written.length,
      pools,
      quarantined: [...held.entries()].map(([name, h]) => ({ installId: h.installId, fsName: h.fsName, reason: h.reason, keptLastGood: h.keep && live.has(name) })),
      released: [...before.keys()].filter((id) => !heldIds.has(id)),
      fpm,
      timings: Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, Math.round(v * 10) / 10])) as PoolApplyReport['timings'],
    };
  }
}

/** The first ERROR/ALERT line php-fpm printed, without its timestamp. */
export function fpmFirstError(output: string): string {
  const lines = output.split('\n');
  const line = lines.find((l) => /\] (ERROR|ALERT): \[pool /.test(l)) ?? lines.find((l) => /\b(ERROR|ALERT|PHP):/.test(l)) ?? lines[0] ?? '';
  return line.replace(/^\[[^\]]+\] /, '').trim().slice(0, 900);
}

/** The pool file php-fpm blamed: `[pool <fs>]`, or the generation's file it could not include or parse. */
export function fpmCulpritOf(output: string, dir: string): string | null {
  const pool = /\[pool ([^\]\s]+)\]/.exec(output);
  if (pool && pool[1] !== SENTINEL_POOL) {
    const name = `${pool[1]}.conf`;
    return isPoolFile(name) ? name : null;
  }
  // An access log it could not open: `<pool dir>/logs/<fs>.access.log`.
  const log = /\/logs\/([a-z][a-z0-9]{0,31})\.access\.log\b/.exec(output);
  if (log) return `${log[1]}.conf`;
  const escaped = dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const file = new RegExp(`${escaped}/([a-z][a-z0-9]{0,31}\\.conf)\\b`).exec(output);
  return file ? file[1]! : null;
}
