import { performance } from 'node:perf_hooks';
import type { INestApplicationContext } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { CodeUpdateItem } from '@app/catalog';
import { InstallUpdateJob, RolloutJob, RolloutsService } from '@app/codebase-update';
import { CodeReleases } from '@app/codebases';
import { TenantDatabases } from '@app/databases';
import { ServerAccess } from '@app/hosts';
import { InstallBuildSteps } from '@app/installs';
import { JobDeferredError, type JobContext } from '@app/queue';
import { SiteProbe } from '@app/webserver';

/** One install's update, timed: the whole job, each step, and each server command within a step. */
export interface InstallProfile {
  installId: number;
  totalMs: number;
  /** Each step's own time (its inner steps' excluded). */
  steps: Record<string, number>;
  /** Server commands by step: how many, and their time. */
  commands: Record<string, { n: number; ms: number }>;
}

export interface RolloutProfile {
  releaseMs: number;
  installs: InstallProfile[];
}

type AnyFn = (...args: unknown[]) => unknown;

/**
 * The rollout's own code run in this process, one install after another
 * with nothing else running (the bench's engine processes stopped), each
 * step and each command sent to a server timed: the parent job's first run
 * (the release: fetch, make, sync, record), then `count` installs' child
 * jobs, canary first, as the worker would run them. The handlers are the
 * engine's own; only the timing wrappers are added, on this app's
 * instances.
 */
export async function profileRollout(app: INestApplicationContext, groupId: number, revision: string, count: number): Promise<RolloutProfile> {
  const rollouts = app.get(RolloutsService);
  const parent = app.get(RolloutJob);
  const child = app.get(InstallUpdateJob);
  const steps = app.get(InstallBuildSteps);
  const access = app.get(ServerAccess);
  const tenants = app.get(TenantDatabases);
  const probe = app.get(SiteProbe);
  const releases = app.get(CodeReleases);
  const ds = app.get(DataSource);

  let current: InstallProfile | null = null;
  const stack: { name: string; childMs: number }[] = [];
  /** Times a method of an instance as step `name`: its own time, the timed steps it calls excluded. */
  const timeStep = (target: object, method: string, name: string) => {
    const original = (target as Record<string, AnyFn>)[method]!.bind(target);
    (target as Record<string, AnyFn>)[method] = async (...args: unknown[]) => {
      const profile = current;
      if (!profile) return original(...args);
      const frame = { name, childMs: 0 };
      stack.push(frame);
      const t = performance.now();
      try {
        return await original(...args);
      } finally {
        const ms = performance.now() - t;
        stack.pop();
        profile.steps[name] = (profile.steps[name] ?? 0) + ms - frame.childMs;
        if (stack.length > 0) stack[stack.length - 1]!.childMs += ms;
      }
    };
  };
  timeStep(child, 'serversOf', 'servers');
  timeStep(child, 'switchTo', 'switch');
  timeStep(child, 'sqlUpdates', 'sql');
  timeStep(child, 'clearCaches', 'caches');
  timeStep(steps, 'loadContext', 'load context');
  timeStep(steps, 'applyTree', 'tree');
  timeStep(steps, 'renderConfig', 'render config');
  timeStep(releases, 'recordedManifest', 'manifest');
  timeStep(tenants, 'runStatements', 'sql client');
  timeStep(probe, 'probe', 'probe');

  // Every command a step sends to a server, by step and method (run/mustRun by program).
  const originalFor = access.executorFor.bind(access);
  const wrapped = new Map<object, object>();
  access.executorFor = ((server: Parameters<typeof originalFor>[0]) => {
    const executor = originalFor(server);
    if (!wrapped.has(executor)) {
      wrapped.set(
        executor,
        new Proxy(executor, {
          get(target, prop, receiver) {
            const value = Reflect.get(target, prop, receiver);
            if (typeof value !== 'function') return value;
            return async (...args: unknown[]) => {
              const profile = current;
              const t = performance.now();
              try {
                return await (value as AnyFn).apply(target, args);
              } finally {
                if (profile) {
                  const argv = args[1];
                  const what = (prop === 'run' || prop === 'mustRun') && Array.isArray(argv) ? `${String(argv[0]).split('/').pop()}${argv[0] === 'sh' ? ' -c' : ''}` : String(prop);
                  const key = `${stack.at(-1)?.name ?? 'job'}: ${what}`;
                  const c = (profile.commands[key] ??= { n: 0, ms: 0 });
                  c.n++;
                  c.ms += performance.now() - t;
                }
              }
            };
          },
        }),
      );
    }
    return wrapped.get(executor) as ReturnType<typeof originalFor>;
  }) as typeof access.executorFor;

  const context = (jobId: number): JobContext => ({ jobId, attempt: 1, maxAttempts: 3, fence: 0, signal: new AbortController().signal, log: () => undefined, error: (line) => process.stderr.write(`  profile: ${line}\n`) });
  const queued = await rollouts.start(groupId, { revision }, { actor: 'bench', via: 'cli' });
  if ('dryRun' in queued) throw new Error('a dry run was answered');
  let t = performance.now();
  try {
    await parent.run({ updateId: queued.updateId }, context(queued.jobId));
  } catch (error) {
    if (!(error instanceof JobDeferredError)) throw error;
  }
  const releaseMs = performance.now() - t;
  const items = await ds.getRepository(CodeUpdateItem).find({ where: { updateId: queued.updateId }, order: { canary: 'DESC', installId: 'ASC' }, take: count });
  const installs: InstallProfile[] = [];
  for (const item of items) {
    current = { installId: item.installId, totalMs: 0, steps: {}, commands: {} };
    t = performance.now();
    await child.run({ updateId: queued.updateId, installId: item.installId }, context(queued.jobId));
    current.totalMs = performance.now() - t;
    const after = await ds.getRepository(CodeUpdateItem).findOneByOrFail({ id: item.id });
    if (after.state !== 'done') throw new Error(`profiled install ${item.installId}: ${after.state} ${after.error}`);
    installs.push(current);
    current = null;
  }
  return { releaseMs, installs };
}

/** Medians over the profiled installs: total, each step, each command kind. */
export function summarize(profile: RolloutProfile): { release_ms: number; installs: number; total_ms: number; total_range_ms: [number, number]; steps_ms: Record<string, number>; commands: Record<string, { n: number; ms: number }>; commands_per_install: number; command_ms_per_install: number } {
  const med = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    const m = Math.floor(s.length / 2);
    return s.length === 0 ? 0 : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
  };
  const all = profile.installs;
  const stepNames = [...new Set(all.flatMap((p) => Object.keys(p.steps)))];
  const commandNames = [...new Set(all.flatMap((p) => Object.keys(p.commands)))].sort();
  const counted = all.map((p) => Object.values(p.commands).reduce((s, c) => s + c.n, 0));
  const timed = all.map((p) => Object.values(p.commands).reduce((s, c) => s + c.ms, 0));
  return {
    release_ms: Math.round(profile.releaseMs),
    installs: all.length,
    total_ms: Math.round(med(all.map((p) => p.totalMs))),
    total_range_ms: [Math.round(Math.min(...all.map((p) => p.totalMs))), Math.round(Math.max(...all.map((p) => p.totalMs)))],
    steps_ms: {
      ...Object.fromEntries(stepNames.map((n) => [n, Math.round(med(all.map((p) => p.steps[n] ?? 0)))])),
      // The job's own catalog reads and writes (item, update, install, database_updates) and the rest.
      'job itself': Math.round(med(all.map((p) => p.totalMs - Object.values(p.steps).reduce((a, b) => a + b, 0)))),
    },
    commands: Object.fromEntries(commandNames.map((n) => [n, { n: med(all.map((p) => p.commands[n]?.n ?? 0)), ms: Math.round(med(all.map((p) => p.commands[n]?.ms ?? 0))) }])),
    commands_per_install: med(counted),
    command_ms_per_install: Math.round(med(timed)),
  };
}
