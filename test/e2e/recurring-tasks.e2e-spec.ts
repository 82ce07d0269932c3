import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { RecurringTaskRecord } from '@app/catalog';
import { createTestCatalog, TEST_SECRETS_KEY, type TestCatalog } from '../support/catalog.js';
import { cleanEnv, runCli } from '../support/processes-engine.js';

const TASK_ENGINE = join(process.cwd(), 'dist/test/support/task-engine.js');

interface TaskProcess {
  child: ChildProcess;
  pid: number;
  /** Its HTTP API (every engine here has the api role). */
  url: string;
  exited: Promise<unknown>;
}

interface Event {
  task: string;
  tick: string;
  pid: number;
  event: string;
  at: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Recurring tasks on the queue (issue 18): engine processes with the api,
 * worker and cron roles (every module, production's poll and reap) on one MariaDB catalog, running test tasks that log what
 * they do. Each tick runs once across the engines, a task's runs never
 * overlap, a killed holder's run is taken over (once) by the other engine,
 * missed ticks after downtime run once, and a hung task makes /health
 * degraded, naming it.
 */
describe('recurring tasks: two engines on one catalog (api + worker + cron each)', () => {
  let catalog: TestCatalog;
  let scratch: string;
  let log: string;
  const processes: TaskProcess[] = [];

  const startTaskEngine = async (extra: Record<string, string> = {}): Promise<TaskProcess> => {
    const env = cleanEnv({ CATALOG_URL: catalog.url, SECRETS_KEY: TEST_SECRETS_KEY, ENGINE_ROLES: 'api,worker,cron', HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'warn', TASK_LOG: log, VAR_DIR: join(scratch, 'var'), ...extra });
    const child = spawn(process.execPath, [TASK_ENGINE], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no task engine in 30 s:\n${output}`)), 30_000);
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        const ready = /task engine \d+ ready (http:\/\/\S+)/.exec(output);
        if (ready) {
          clearTimeout(timer);
          resolve(ready[1]!);
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      void exited.then(() => reject(new Error(`the task engine exited:\n${output}`)));
    });
    const started = { child, pid: child.pid!, url, exited };
    processes.push(started);
    return started;
  };

  const cliEnv = () => cleanEnv({ CATALOG_URL: catalog.url, SECRETS_KEY: TEST_SECRETS_KEY, VAR_DIR: join(scratch, 'cli-var'), LOG_LEVEL: 'silent' });

  const events = (): Event[] =>
    existsSync(log)
      ? readFileSync(log, 'utf8')
          .trim()
          .split('\n')
          .filter(Boolean)
          .map((line) => {
            const [task, tick, pid, event, at] = line.split(' ');
            return { task: task!, tick: tick!, pid: Number(pid), event: event!, at: Number(at) };
          })
      : [];

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'tasks-'));
    log = join(scratch, 'tasks.log');
    catalog = await createTestCatalog('mariadb', 'tasks');
  });
  afterAll(async () => {
    for (const p of processes) p.child.kill('SIGKILL');
    await Promise.all(processes.map((p) => p.exited));
    await catalog?.drop();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('runs each tick once across both engines, and never two runs of a task at once', async () => {
    const a = await startTaskEngine();
    const b = await startTaskEngine();
    await sleep(8_000);
    const counter = events().filter((e) => e.task === 'TestCounter');
    const ticks = counter.map((e) => e.tick);
    // Every tick once: no tick run twice, whichever engine queued or ran it.
    expect(new Set(ticks).size).toBe(ticks.length);
    expect(ticks.length).toBeGreaterThanOrEqual(6);
    // Ticks a second apart, none lost while both engines ran (allow the first second of start).
    const times = [...new Set(ticks)].map((t) => Date.parse(t)).sort((x, y) => x - y);
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    expect(gaps.filter((g) => g > 1000).length).toBeLessThanOrEqual(2);

    // The slow task (2.5 s a run, due every second): runs one after another, the ticks during a run skipped.
    const slow = events().filter((e) => e.task === 'TestSlow');
    const runs = slow.filter((e) => e.event === 'start').map((s) => ({ start: s.at, end: slow.find((e) => e.event === 'end' && e.tick === s.tick)?.at ?? Infinity, pid: s.pid }));
    runs.sort((x, y) => x.start - y.start);
    for (let i = 1; i < runs.length; i++) expect(runs[i]!.start).toBeGreaterThanOrEqual(runs[i - 1]!.end);
    expect(runs.length).toBeGreaterThanOrEqual(2);
    const rows = await (await dataSource()).getRepository(RecurringTaskRecord).find();
    expect(rows.find((r) => r.name === 'TestSlow')!.skipped).toBeGreaterThan(0);
    expect(rows.find((r) => r.name === 'TestCounter')!.runs).toBe(new Set(events().filter((e) => e.task === 'TestCounter').map((e) => e.tick)).size);
    expect([a.pid, b.pid]).toEqual(expect.arrayContaining([...new Set(counter.map((e) => e.pid))]));
  }, 60_000);

  it('takes over the run of a killed engine once, after its lease, and never beside it', async () => {
    // The engine running the slow task now is killed mid-run.
    let running: Event | undefined;
    for (let i = 0; i < 50 && !running; i++) {
      const slow = events().filter((e) => e.task === 'TestSlow');
      running = slow.filter((e) => e.event === 'start').find((s) => !slow.some((e) => e.event === 'end' && e.tick === s.tick));
      if (!running) await sleep(100);
    }
    expect(running).toBeDefined();
    const victim = processes.find((p) => p.pid === running!.pid)!;
    victim.child.kill('SIGKILL');
    const killedAt = Date.now();
    await victim.exited;
    const survivor = processes.find((p) => p !== victim && p.child.exitCode === null && p.child.signalCode === null)!;
    // Its run of that tick starts again on the survivor (the same host sees the holder's process gone) and ends.
    let again: Event[] = [];
    for (let i = 0; i < 200; i++) {
      again = events().filter((e) => e.task === 'TestSlow' && e.tick === running!.tick && e.pid === survivor.pid);
      if (again.some((e) => e.event === 'end')) break;
      await sleep(100);
    }
    expect(again.map((e) => e.event)).toEqual(['start', 'end']);
    expect(again[0]!.at).toBeGreaterThan(killedAt);
    // Only one take-over of it, and the survivor's runs still never overlap.
    expect(events().filter((e) => e.task === 'TestSlow' && e.tick === running!.tick && e.event === 'start')).toHaveLength(2);
    const slow = events().filter((e) => e.task === 'TestSlow' && e.pid === survivor.pid && e.at > killedAt);
    const runs = slow.filter((e) => e.event === 'start').map((s) => ({ start: s.at, end: slow.find((e) => e.event === 'end' && e.tick === s.tick && e.at >= s.at)?.at ?? Infinity }));
    runs.sort((x, y) => x.start - y.start);
    for (let i = 1; i < runs.length; i++) expect(runs[i]!.start).toBeGreaterThanOrEqual(runs[i - 1]!.end);
  }, 60_000);

  it('after downtime, runs a missed tick once, not once per missed tick', async () => {
    for (const p of processes) p.child.kill('SIGTERM');
    await Promise.all(processes.map((p) => p.exited));
    const stoppedAt = Date.now();
    await sleep(4_500);
    const restartedAt = Date.now();
    await startTaskEngine();
    await sleep(3_000);
    const during = events().filter((e) => e.task === 'TestCounter' && Date.parse(e.tick) > stoppedAt && Date.parse(e.tick) < restartedAt - 1000);
    expect(during.length).toBeLessThanOrEqual(1);
    const after = events().filter((e) => e.task === 'TestCounter' && e.at > restartedAt);
    expect(after.length).toBeGreaterThanOrEqual(2);
  }, 60_000);

  it('reports a task that hangs as stale in /health within twice its interval, naming it', async () => {
    const engine = await startTaskEngine({ TASK_HANG: '1' });
    const created = await runCli(['token:create', '--scope', 'support', '--name', 'tasks-health'], process.cwd(), cliEnv());
    expect(created.code).toBe(0);
    const token = created.stdout.trim().split('\n').pop()!;
    // Both engines answer for the whole fleet: the one running the hung task and the other.
    for (const { url } of processes.filter((p) => p.child.exitCode === null && p.child.signalCode === null)) {
      const health = async () => (await (await fetch(`${url}/health`, { headers: { authorization: `Bearer ${token}` } })).json()) as { status: string; details: Record<string, Record<string, unknown>> };
      const started = Date.now();
      let body = await health();
      while (!String(body.details.tasks?.staleTasks ?? '').includes('TestHang') && Date.now() - started < 10_000) {
        await sleep(250);
        body = await health();
      }
      // Every 2 s, never successful: stale once 4 s have passed since it was first scheduled. (TestSlow, 2.5 s a
      // run due every second, may be stale too at times: its successes can be more than twice its interval apart.)
      expect(body.details.tasks).toMatchObject({ status: 'degraded' });
      expect(String(body.details.tasks!.staleTasks)).toContain('TestHang (every 2 s): no success yet');
      expect(String(body.details.tasks!.staleTasks)).not.toContain('TestCounter');
      expect(Date.now() - started).toBeLessThan(8_000);
    }
    expect(engine.url).toMatch(/^http:/);
  }, 60_000);

  it('lists the tasks and runs one now from the CLI, streaming its output', async () => {
    const env = cliEnv();
    const list = await runCli(['tasks:list'], process.cwd(), env);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/TestCounter\s+every 1 s\s+\d{4}-/);
    expect(list.stdout).toMatch(/TestHang\s+every 2 s.*STALE/);
    const json = JSON.parse((await runCli(['tasks:list', '--json'], process.cwd(), env)).stdout) as { name: string; runs: number; stale: boolean }[];
    expect(json.find((t) => t.name === 'TestCounter')).toMatchObject({ stale: false });
    expect(json.find((t) => t.name === 'TestCounter')!.runs).toBeGreaterThan(5);

    const before = events().filter((e) => e.task === 'TestCounter').length;
    const run = await runCli(['tasks:run', 'TestCounter'], process.cwd(), env);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/task TestCounter: run queued as job \d+; output follows/);
    expect(run.stdout).toMatch(/job \d+ done after 1 attempt/);
    expect(events().filter((e) => e.task === 'TestCounter').length).toBeGreaterThan(before);

    const unknown = await runCli(['tasks:run', 'NoSuchTask'], process.cwd(), env);
    expect(unknown.code).toBe(1);
    // The engines' own tasks are there too: these engines are the production engine with test tasks added.
    expect(unknown.stderr).toMatch(/no recurring task "NoSuchTask"; tasks: BackupPurge, .*SiteHealth, TestCounter, TestHang, TestSlow, ThemeSync, WaitingInstalls/);
  }, 60_000);

  let ds: DataSource | null = null;
  async function dataSource(): Promise<DataSource> {
    if (ds) return ds;
    const { catalogDataSourceOptions } = await import('@app/catalog');
    ds = new DataSource(await catalogDataSourceOptions(catalog.catalog));
    await ds.initialize();
    return ds;
  }
  afterAll(async () => {
    await ds?.destroy();
  });
});
