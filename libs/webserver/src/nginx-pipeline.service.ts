import { performance } from 'node:perf_hooks';
import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import { Metrics } from '@app/metrics';
import { DataSource, In } from 'typeorm';
import { AuditEventRepository, Server, WebQuarantine } from '@app/catalog';
import { PermanentJobError } from '@app/queue';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { ServerAccess } from '@app/hosts';
import { DispatcherInputLoader } from './dispatcher-input.loader.js';
import {
  DispatcherFiles,
  fsNameOfFile,
  isGroupFile,
  isHostsFile,
  isInstallFile,
  isUpstreamFile,
  newGenerationName,
  NginxReloadRefusedError,
  type PlannedFile,
  type ReloadOutcome,
  type StagedGeneration,
} from './dispatcher-files.js';
import { NginxRebuilds } from './nginx-rebuilds.service.js';
import {
  DEFAULTS_FILE,
  groupTemplate,
  hostsEntries,
  hostsFile,
  installFiles,
  MAIN_INCLUDE,
  renderDefaults,
  renderEach,
  renderGroups,
  sha256,
  type GroupTemplate,
  type InstallInput,
  type RenderMemo,
} from './render.js';

export interface ApplyOptions {
  /** Stage and diff only: nothing goes live, nothing is recorded. */
  dryRun?: boolean;
  log?: (line: string) => void;
}

/** At most this many changed install files go to a reload without a test of the whole config (each is tested alone). */
const UNTESTED_RELOAD_MAX_FILES = 8;

export interface ApplyReport {
  server: string;
  /** The generation now live (or that would be, on a dry run); null when nothing changed. */
  generation: string | null;
  /** Files written (changed or new: installs', shared server blocks', upstreams'); every other file is a hard link to the live one. */
  written: string[];
  removed: string[];
  filesWritten: number;
  /** Installs refused on this dispatcher by this run, with why (their sites keep their last good vhost, or none). */
  quarantined: { installId: number; fsName: string; reason: string; keptLastGood: boolean }[];
  /** Installs whose quarantine this run lifted (their file passed). */
  released: number[];
  /** What happened to the running nginx. */
  nginx: 'reloaded' | 'not-running' | 'unchanged' | 'untested' | 'dry-run';
  diff?: string;
  timings: { loadMs: number; renderMs: number; inspectMs: number; stageMs: number; testMs: number; reloadMs: number; pruneMs: number; totalMs: number };
}

/** The new config was refused and no single install could be blamed: nothing went live. */
export class NginxApplyError extends PermanentJobError {
  override name = 'NginxApplyError';
  /** Retrying the same config cannot help. */
  readonly permanent = true;
}

/**
 * The dispatcher's nginx is not running (or its pid file is stale): the
 * config is in place but nothing serves it. The rebuild fails (reported,
 * retried); the sites it carries are not live.
 */
export class NginxNotRunningError extends Error {
  override name = 'NginxNotRunningError';
}

function notRunning(server: Server, reload: ReloadOutcome): string {
  const pidFile = server.nginxPidFile ?? '/run/nginx.pid';
  return reload === 'stale-pid'
    ? `nginx is not running on ${server.hostname}: its pid file ${pidFile} names a process that is not an nginx master (stale; not signalled)`
    : `nginx is not running on ${server.hostname} (no process for its pid file ${pidFile})`;
}

interface ApplyMemo {
  render: RenderMemo;
  digests: Map<string, string>;
  staged?: StagedGeneration;
}

interface Held {
  installId: number;
  fsName: string;
  reason: string;
  /** Link the live file (its last good vhost) into the new generation, rather than leave the install out. */
  keep: boolean;
}

/**
 * Applies the catalog to one dispatcher's nginx, never breaking what is
 * live: a new generation is staged beside the live one (changed files
 * written, the rest hard-linked), tested with `nginx -t`, and only then
 * swapped in and reloaded; the reload is verified by the new workers it
 * starts, and undone if they never come. An install whose file nginx
 * refuses is quarantined (named, flagged, audited) and the rest applied.
 * Callers serialize per dispatcher (the rebuild job's resource key).
 */
@Injectable()
export class NginxPipeline {
  private readonly logger = new Logger('NginxPipeline');
  /** Per dispatcher, from its last apply in this process: installs' renders by input, files' digests by content, the last generation staged. */
  private readonly memos = new Map<number, ApplyMemo>();

  constructor(
    private readonly dataSource: DataSource,
    private readonly access: ServerAccess,
    private readonly loader: DispatcherInputLoader,
    private readonly rebuilds: NginxRebuilds,
    private readonly audit: AuditEventRepository,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
    @Optional() private readonly metrics?: Metrics,
  ) {}

  files(server: Server): DispatcherFiles {
    return new DispatcherFiles(this.access.executorFor(server), server);
  }

  async apply(server: Server, options: ApplyOptions = {}): Promise<ApplyReport> {
    // Work started alongside (prune, manifest) ends before the apply does, whatever the outcome: the next apply of this dispatcher must not meet it.
    const background: Promise<unknown>[] = [];
    const started = performance.now();
    let outcome = 'failed';
    try {
      const report = await this.applyOnce(server, options, background);
      outcome = report.nginx;
      if (!options.dryRun && report.quarantined.length > 0) this.metrics?.quarantined.inc({ server: server.hostname, kind: 'nginx' }, report.quarantined.length);
      return report;
    } finally {
      await Promise.allSettled(background);
      if (!options.dryRun) {
        this.metrics?.rebuilds.inc({ server: server.hostname, kind: 'nginx', outcome });
        this.metrics?.rebuildDuration.observe({ server: server.hostname, kind: 'nginx' }, (performance.now() - started) / 1000);
      }
    }
  }

  private async applyOnce(server: Server, options: ApplyOptions, background: Promise<unknown>[]): Promise<ApplyReport> {
    const started = performance.now();
    const log = options.log ?? (() => undefined);
    const memo: ApplyMemo = this.memos.get(server.id) ?? { render: new Map(), digests: new Map() };
    const files = this.files(server);
    const timings = { loadMs: 0, renderMs: 0, inspectMs: 0, stageMs: 0, testMs: 0, reloadMs: 0, pruneMs: 0, totalMs: 0 };

    // What the dispatcher has is read (and linked into the first round's new generation) while the catalog is loaded and rendered: neither needs the other.
    const clone = newGenerationName();
    const [{ input, rendered }, state, quarantinedBefore] = await Promise.all([
      this.loader.load(server).then((loaded) => {
        timings.loadMs = performance.now() - started;
        const mark = performance.now();
        const output = renderEach(loaded, memo.render);
        timings.renderMs = performance.now() - mark;
        return { input: loaded, rendered: output };
      }),
      files.inspect(memo.staged, clone).then((inspected) => {
        timings.inspectMs = performance.now() - started;
        return inspected;
      }),
      this.dataSource.getRepository(WebQuarantine).find({ where: { serverId: server.id } }).then((rows) => new Map(rows.map((q) => [q.installId, q]))),
    ]);
    const inputOf = new Map(input.installs.map((i) => [i.fsName, i]));
    const live = state.current;
    let mark = 0;
    /**
     * Older generations and what crashed runs left staged go while the new
     * one is staged and tested (the live one and last-good stay: a reload
     * that fails goes back to them). Started once; a later round waits for
     * it before staging, so it never sees that round's generation.
     */
    let pruning: Promise<void> | null = null;

    /** Installs held back, by fs name: left out, or kept on the file(s) the live generation has for them. */
    const held = new Map<string, Held>();
    for (const r of rendered.refused) {
      held.set(r.fsName, { installId: r.id, fsName: r.fsName, reason: r.error, keep: true });
    }
    const heldOf = (name: string) => held.get(fsNameOfFile(name) ?? '');
    // The shared server blocks are rendered by the plan, from the hosts files the generation holds.
    const desired = new Map([...rendered.files].filter(([name]) => isInstallFile(name) || isUpstreamFile(name)));
    const mainInclude = rendered.files.get(MAIN_INCLUDE)!;
    const ports = { http: input.httpPort ?? 80, https: input.httpsPort ?? 443 };
    const alone = (name: string) => ({
      shop: name,
      upstream: rendered.upstreamOf.get(name)!,
      groups: isHostsFile(name) ? [...new Set(hostsEntries(desired.get(name) ?? '').map((e) => e.group))] : [],
    });
    /**
     * The live hosts files of installs kept on them (their hostnames and the shared blocks serving them are in them), and the
     * live blocks they name that no rendered install does (read back without their hostnames: they then list the kept
     * installs' only, never a name that moved to another block): read before a plan needs them.
     */
    const keptHosts = new Map<string, string>();
    const keptGroups = new Map<string, GroupTemplate>();
    const readKept = async () => {
      if (live === null) return;
      for (const [fsName, h] of held) {
        const name = hostsFile(fsName);
        if (!h.keep || !state.hashes.has(name) || keptHosts.has(name)) continue;
        const content = (await files.read(live, name)) ?? '';
        keptHosts.set(name, content);
        for (const { group } of hostsEntries(content)) {
          if (rendered.groups.has(group) || keptGroups.has(group) || !state.hashes.has(group)) continue;
          const template = groupTemplate(group, (await files.read(live, group)) ?? '');
          if (template) keptGroups.set(group, template);
        }
      }
    };

    // By content: an install rendered from the memo is the same string as last time, and so is its digest.
    const digests = new Map<string, string>();
    const digest = (content: string) => {
      const known = digests.get(content) ?? memo.digests.get(content) ?? sha256(content);
      digests.set(content, known);
      return known;
    };
    // Pure caches (input → file, content → digest): right whatever becomes of this apply.
    const memoNow: ApplyMemo = { render: rendered.memo, digests };
    this.memos.set(server.id, memoNow);
    const linked = (name: string): PlannedFile => ({ name, link: true, sha256: state.hashes.get(name)! });

    const plan = () => {
      const list: PlannedFile[] = [];
      const written: string[] = [];
      const names = new Set(desired.keys());
      const kept = live === null ? [] : [...held].filter(([, h]) => h.keep).flatMap(([fsName]) => installFiles(fsName).filter((n) => state.hashes.has(n)));
      for (const name of kept) names.add(name);
      // An install kept on its last good file may pass PHP to an upstream (or be served by a shared block) no rendered install
      // has any more: the live upstreams stay while one is (the live block, when no rendered install names it: see below).
      if (kept.length > 0) for (const name of state.hashes.keys()) if (isUpstreamFile(name)) names.add(name);
      const hosts: string[] = [];
      const put = (name: string, content: string) => {
        const stays = live !== null && state.hashes.has(name);
        if (stays && state.hashes.get(name) === digest(content)) list.push(linked(name));
        else {
          list.push({ name, content });
          written.push(name);
        }
      };
      for (const name of [...names].sort()) {
        const stays = live !== null && state.hashes.has(name);
        const h = heldOf(name);
        if (h) {
          if (h.keep && stays) {
            list.push(linked(name));
            if (isHostsFile(name)) hosts.push(keptHosts.get(name) ?? '');
          }
          continue;
        }
        const content = desired.get(name);
        if (content === undefined) list.push(linked(name));
        else {
          put(name, content);
          if (isHostsFile(name)) hosts.push(content);
        }
      }
      // The shared server blocks, with the hostnames of the hosts files this generation holds.
      for (const [name, content] of renderGroups(keptGroups.size > 0 ? new Map([...rendered.groups, ...keptGroups]) : rendered.groups, hosts)) put(name, content);
      const mainChanged = !(live !== null && state.hashes.get(MAIN_INCLUDE) === sha256(mainInclude));
      list.push(mainChanged ? { name: MAIN_INCLUDE, content: mainInclude } : linked(MAIN_INCLUDE));
      // The default servers: the addresses of the install files this generation holds (a held-back install's address stays unbound: nginx -t of its address would fail again).
      const served = new Map<string, InstallInput>();
      for (const f of list) {
        const install = inputOf.get(fsNameOfFile(f.name) ?? '');
        if (install) served.set(install.fsName, install);
      }
      const defaults = renderDefaults([...served.values()], ports);
      const defaultsChanged = !(live !== null && state.hashes.get(DEFAULTS_FILE) === sha256(defaults));
      list.push(defaultsChanged ? { name: DEFAULTS_FILE, content: defaults } : linked(DEFAULTS_FILE));
      if (defaultsChanged) written.push(DEFAULTS_FILE);
      const staying = new Set(list.map((f) => f.name));
      const removed = [...state.hashes.keys()].filter((n) => (isInstallFile(n) || isUpstreamFile(n) || isGroupFile(n)) && !staying.has(n));
      return { list, written, removed, mainChanged };
    };

    let generation = '';
    await readKept();
    let planned = plan();
    const reloadLimit = 60 + Math.ceil(desired.size / 100);
    /** Reloaded by the untested path (below), which ended the rounds. */
    let untestedReload: ReloadOutcome | null = null;
    /** nginx refused what the untested path gave it: every later round tests the whole first. */
    let reloadRefused = false;
    /** The staged generation's manifest (what the next inspect compares the files with), in the background; lost, it only costs hashing. */
    const writeManifest = () => {
      const staged = memoNow.staged!;
      background.push(files.writeManifest(staged).catch((error: Error) => this.logger.warn(`no manifest for ${staged.generation} on ${server.hostname}: ${error.message}`)));
    };
    for (let round = 1; ; round++) {
      if (round > 100) throw new NginxApplyError(`nginx on ${server.hostname}: gave up after 100 rounds of finding refused installs`);
      // Each round after the first leaves out what the previous one found refused.
      if (round > 1) {
        await readKept();
        planned = plan();
      }
      if (live !== null && planned.written.length === 0 && planned.removed.length === 0 && !planned.mainChanged) {
        if (!options.dryRun && (await this.rebuilds.configRow(server.id)).liveGeneration !== live) {
          // A run killed between its swap and its record: `current` is a tested config nginx may not have loaded yet. Load it, then record it.
          if (round === 1 && state.cloned) await files.remove(state.cloned);
          const reload = await files.reload(60 + Math.ceil(rendered.files.size / 100));
          if (reload === 'no-new-workers') throw new Error(`nginx on ${server.hostname} did not start workers on ${live} (see its error log)`);
          await this.record(server, held, quarantinedBefore, { generation: live, previous: state.lastGood }, options);
          // What the stopped run would have pruned: every generation but the live one and last-good.
          await files.prune(live, [state.lastGood]);
          timings.totalMs = performance.now() - started;
          if (reload !== 'reloaded' && !this.mayRunWithoutNginx(server)) throw new NginxNotRunningError(`${notRunning(server, reload)}; ${live} is in place and loads when it starts`);
          log(`nginx on ${server.hostname}: ${live} was in place but not recorded live (a run stopped after its swap): reloaded and recorded`);
          return this.report(server, live, planned, held, quarantinedBefore, state.hashes, reload === 'reloaded' ? 'reloaded' : 'not-running', timings);
        }
        await this.record(server, held, quarantinedBefore, null, options);
        if (round === 1 && state.cloned) await files.remove(state.cloned);
        // A run killed after its swap or record, before its prune ended, left generations (or test configs) behind: they go now.
        const stray = state.generations.some((g) => g !== live && g !== state.lastGood && g !== state.cloned);
        if (!options.dryRun && (stray || state.strayTests)) await files.prune(live, [state.lastGood]);
        timings.totalMs = performance.now() - started;
        log(`nginx on ${server.hostname}: nothing changed (generation ${live})`);
        return this.report(server, null, planned, held, quarantinedBefore, state.hashes, 'unchanged', timings);
      }
      const cloned = round === 1 && state.cloned === clone;
      generation = round === 1 ? clone : newGenerationName();
      // A small change to a tested live config goes to the reload untested (below).
      const untested = live !== null && !reloadRefused && !planned.mainChanged && planned.written.filter(isInstallFile).length <= UNTESTED_RELOAD_MAX_FILES;
      const startPruning = (staging: string) => {
        const pruneStarted = performance.now();
        pruning = files.prune(staging, [live, state.lastGood]).then(() => {
          timings.pruneMs = performance.now() - pruneStarted;
        });
        // Awaited before the apply returns, whatever happens; never an unhandled rejection meanwhile.
        background.push(pruning);
        pruning.catch(() => undefined);
      };
      if (pruning) await pruning;
      // The untested path prunes after its reload: removing a generation's thousands of files is CPU and disk the reload waits for.
      else if (!options.dryRun && !untested) startPruning(generation);
      mark = performance.now();
      const filesWritten = await files.stage(generation, live, planned.list, { cloned, removed: planned.removed });
      if (!options.dryRun) memoNow.staged = { generation, hashes: new Map(planned.list.map((f) => [f.name, 'link' in f ? f.sha256 : digest(f.content)])) };
      timings.stageMs += performance.now() - mark;
      log(`staged ${generation} on ${server.hostname}: ${filesWritten} file(s) written, ${planned.removed.length} removed`);

      if (options.dryRun) {
        const diff = await files.diff(live, generation);
        await files.remove(generation);
        timings.totalMs = performance.now() - started;
        return { ...this.report(server, generation, planned, held, quarantinedBefore, state.hashes, 'dry-run', timings), diff };
      }

      // Tried alone first: a quarantined install's new file (one that still fails costs no full test), and on the untested path (below)
      // every changed install file.
      const testedAlone = untested
        ? planned.written.filter(isInstallFile)
        : planned.written.filter((n) => isInstallFile(n) && quarantinedBefore.has(inputOf.get(fsNameOfFile(n)!)?.id ?? -1));
      let refusedAlone = false;
      mark = performance.now();
      for (const name of testedAlone) {
        const result = await files.test(generation, alone(name));
        if (!result.ok && !this.untestable(server, result.untestable)) {
          this.hold(held, name, inputOf, firstError(result.stderr), true);
          refusedAlone = true;
        }
      }
      timings.testMs += performance.now() - mark;
      if (refusedAlone) {
        await files.remove(generation);
        continue;
      }

      if (untested) {
        // A small change to a tested live config: each new file passed alone (a few installs, not thousands), and the whole goes to
        // the reload untested, for nginx refuses at load a config it cannot run and its old workers serve on. One parse of every
        // install per change instead of two. Refused: `current` goes back, and the next round tests the whole to find the culprit.
        mark = performance.now();
        try {
          untestedReload = await files.swapAndReload(generation, live, reloadLimit);
          timings.reloadMs = performance.now() - mark;
          // The manifest and the prune after the reload, not beside it: their work on every file is CPU the master's parse would wait for.
          if (!pruning) startPruning(generation);
          writeManifest();
          break;
        } catch (error) {
          if (!(error instanceof NginxReloadRefusedError)) throw error;
          await files.swap(live, state.lastGood);
          await files.remove(generation);
          reloadRefused = true;
          log(`${error.message}; current is back on ${live}, the whole config is tested next`);
          continue;
        }
      }

      mark = performance.now();
      const test = await files.testStaged(generation);
      timings.testMs += performance.now() - mark;
      if (test.ok) break;
      if (this.untestable(server, test.untestable)) {
        log(`nginx cannot test configs on ${server.hostname} (not installed, or not run as root): ${generation} goes live untested`);
        break;
      }
      const culprit = culpritOf(test.stderr, files.dir(generation));
      if (culprit && (desired.has(culprit) || heldOf(culprit))) {
        // Named by nginx. A new file falls back to the install's last good one; a file that was already live is left out.
        const wasWritten = planned.written.includes(culprit);
        const already = heldOf(culprit);
        this.hold(held, culprit, inputOf, firstError(test.stderr), wasWritten && !already);
        log(`nginx -t on ${server.hostname} refused ${culprit}: ${firstError(test.stderr)}`);
      } else {
        // Not named: each new file alone against the base config.
        const failing: string[] = [];
        mark = performance.now();
        for (const name of planned.written.filter(isInstallFile)) {
          const result = await files.test(generation, alone(name));
          if (!result.ok) {
            this.hold(held, name, inputOf, firstError(result.stderr), true);
            failing.push(name);
          }
        }
        timings.testMs += performance.now() - mark;
        if (failing.length === 0) {
          await files.remove(generation);
          throw new NginxApplyError(`nginx -t on ${server.hostname} refused the new config and no single install is at fault; the live config is untouched: ${test.stderr}`);
        }
      }
      await files.remove(generation);
    }

    let reload = untestedReload;
    if (reload === null) {
      writeManifest();
      mark = performance.now();
      try {
        reload = await files.swapAndReload(generation, live, reloadLimit);
      } catch (error) {
        if (!(error instanceof NginxReloadRefusedError)) throw error;
        // Passed nginx -t, refused at load (an address not on this host, say): nginx runs the live config still.
        if (live) await files.swap(live, state.lastGood);
        throw new Error(`${error.message}; current is back on ${live ?? 'nothing'}`);
      }
      timings.reloadMs = performance.now() - mark;
    }
    if (reload === 'no-new-workers') {
      if (live) await files.swapAndReload(live, state.lastGood, reloadLimit);
      throw new Error(`nginx on ${server.hostname} did not start workers on the new config within ${reloadLimit} s (see its error log); current is back on ${live ?? 'nothing'}`);
    }
    const running = reload === 'reloaded';
    if (running) log(`nginx on ${server.hostname} reloaded on ${generation}`);
    else log(`${notRunning(server, reload)}: ${generation} is in place and loads when it starts`);
    // The swap happened: what `current` points at is recorded whether or not an nginx runs to load it.
    await this.record(server, held, quarantinedBefore, { generation, previous: live }, options);
    await Promise.all([pruning, ...background]);
    timings.totalMs = performance.now() - started;
    // Only the embedded default's own machine may have no nginx: anywhere else, a config nobody serves is a failed rebuild.
    if (!running && !this.mayRunWithoutNginx(server)) throw new NginxNotRunningError(`${notRunning(server, reload)}; the new config is in place and loads when it starts`);
    return this.report(server, generation, planned, held, quarantinedBefore, state.hashes, running ? 'reloaded' : this.untestable(server, true) ? 'untested' : 'not-running', timings);
  }

  /** Points `current` back at the last good generation and reloads (the generation it leaves becomes last-good). */
  async rollback(server: Server, log: (line: string) => void = () => undefined): Promise<{ generation: string; nginx: string }> {
    const files = this.files(server);
    const state = await files.inspect();
    if (!state.lastGood || !state.generations.includes(state.lastGood)) throw new NginxApplyError(`${server.hostname} has no last-good nginx generation to roll back to`);
    const test = await files.test(state.lastGood);
    if (!test.ok && !this.untestable(server, test.untestable)) throw new NginxApplyError(`the last-good generation ${state.lastGood} on ${server.hostname} no longer passes nginx -t: ${test.stderr}`);
    const reload = await files.swapAndReload(state.lastGood, state.current, 120);
    if (reload === 'no-new-workers') throw new Error(`nginx on ${server.hostname} did not start workers on ${state.lastGood} (see its error log)`);
    log(`nginx on ${server.hostname} rolled back to ${state.lastGood} (${reload})`);
    await this.rebuilds.configRow(server.id, { liveGeneration: state.lastGood, lastGoodGeneration: state.current, appliedAt: new Date(), lastError: null });
    if (reload !== 'reloaded' && !this.mayRunWithoutNginx(server)) throw new NginxNotRunningError(`${notRunning(server, reload)}; ${state.lastGood} is back in place and loads when it starts`);
    return { generation: state.lastGood, nginx: reload };
  }

  private hold(held: Map<string, Held>, name: string, inputOf: Map<string, InstallInput>, reason: string, keep: boolean): void {
    const install = inputOf.get(fsNameOfFile(name) ?? '');
    if (!install) throw new NginxApplyError(`nginx refused ${name}, which is no install of this dispatcher`);
    held.set(install.fsName, { installId: install.id, fsName: install.fsName, reason, keep });
  }

  /** True when the dispatcher is the embedded default's own machine and no nginx runs for it: nothing there can be probed. */
  async servesWithoutNginx(server: Server): Promise<boolean> {
    return this.mayRunWithoutNginx(server) && (await this.files(server).status()) !== 'running';
  }

  /** The embedded default's own machine may run without nginx (the newcomer may not have it); no other dispatcher may. */
  private mayRunWithoutNginx(server: Server): boolean {
    return this.config.embedded && server.transport === 'local';
  }

  private untestable(server: Server, missing: boolean): boolean {
    if (!this.config.embedded || server.transport !== 'local') return false;
    return missing || process.getuid?.() !== 0;
  }

  /** Quarantine rows, audit, the dispatcher's row: after the swap (or when nothing changed). */
  private async record(
    server: Server,
    held: Map<string, Held>,
    before: Map<number, WebQuarantine>,
    swapped: { generation: string; previous: string | null } | null,
    options: ApplyOptions,
  ): Promise<void> {
    if (options.dryRun) return;
    const heldIds = new Set([...held.values()].map((h) => h.installId));
    const fresh: Held[] = [];
    await this.dataSource.transaction(async (m) => {
      for (const h of held.values()) {
        const reason = `nginx on ${server.hostname} refused install ${h.installId} (${h.fsName}): ${h.reason}`.slice(0, 1024);
        if (before.has(h.installId)) {
          await m.update(WebQuarantine, { id: before.get(h.installId)!.id }, { reason });
          continue;
        }
        await m.insert(WebQuarantine, { serverId: server.id, installId: h.installId, reason });
        fresh.push(h);
      }
      // Lifted: passed this time (its render is what nginx runs now, swapped in or already live), or no longer served here (removed, failed).
      const lifted = [...before.keys()].filter((id) => !heldIds.has(id));
      if (lifted.length > 0) await m.delete(WebQuarantine, { serverId: server.id, installId: In(lifted) });
    });
    for (const h of fresh) {
      this.logger.error({ server: server.hostname, installId: h.installId, fsName: h.fsName }, `quarantined on ${server.hostname}: install ${h.installId} (${h.fsName}): ${h.reason}`);
      await this.audit.record({
        actor: 'nginx-pipeline',
        via: 'worker',
        action: 'nginx.quarantine',
        targetType: 'install',
        targetId: h.installId,
        details: { server: server.hostname, fsName: h.fsName, reason: h.reason.slice(0, 500), keptLastGood: h.keep },
      });
    }
    if (swapped) {
      await this.rebuilds.configRow(server.id, { liveGeneration: swapped.generation, lastGoodGeneration: swapped.previous, appliedAt: new Date(), lastError: null });
    }
  }

  private report(
    server: Server,
    generation: string | null,
    planned: { written: string[]; removed: string[] },
    held: Map<string, Held>,
    before: Map<number, WebQuarantine>,
    live: Map<string, string>,
    nginx: ApplyReport['nginx'],
    timings: ApplyReport['timings'],
  ): ApplyReport {
    const heldIds = new Set([...held.values()].map((h) => h.installId));
    return {
      server: server.hostname,
      generation,
      written: planned.written,
      removed: planned.removed,
      filesWritten: planned.written.length,
      quarantined: [...held.values()].map((h) => ({ installId: h.installId, fsName: h.fsName, reason: h.reason, keptLastGood: h.keep && installFiles(h.fsName).some((n) => live.has(n)) })),
      released: nginx === 'dry-run' ? [] : [...before.keys()].filter((id) => !heldIds.has(id)),
      nginx,
      timings: Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, Math.round(v * 10) / 10])) as ApplyReport['timings'],
    };
  }
}

/** The first error line nginx printed, without its prefix. */
function firstError(stderr: string): string {
  const line = stderr.split('\n').find((l) => /\[(emerg|alert|crit|error)\]/.test(l)) ?? stderr.split('\n')[0] ?? '';
  // Without nginx's own prefix, timestamp and pid: `[emerg] cannot load certificate ...`.
  return line.replace(/^nginx: /, '').replace(/^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d /, '').replace(/^(\[\w+\]) \d+#\d+: /, '$1 ').trim().slice(0, 900);
}

/** The install file nginx named in its error (`... in <dir>/shops/<fs>.conf:<line>`, or a hosts file), if any. */
function culpritOf(stderr: string, dir: string): string | null {
  const escaped = dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const m = new RegExp(`${escaped}/((?:shops|hosts)/[a-z][a-z0-9]{0,31}\\.conf)(:\\d+)?`).exec(stderr);
  return m ? m[1]! : null;
}

