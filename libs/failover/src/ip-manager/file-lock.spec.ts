import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withFileLock } from './file-lock.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('withFileLock (ip-manager runs on one node, one at a time)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'file-lock-'));
  const lock = join(dir, 'ip-manager.lock');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('runs holders one after another, in the order they took it, and removes the file after', async () => {
    const events: string[] = [];
    const run = (name: string, ms: number) =>
      withFileLock(lock, 5_000, async () => {
        events.push(`${name} start`);
        await sleep(ms);
        events.push(`${name} end`);
        return name;
      }, { orRunAnyway: false });
    const first = run('first', 150);
    await sleep(20);
    const second = run('second', 10);
    expect(await Promise.all([first, second])).toEqual(['first', 'second']);
    expect(events).toEqual(['first start', 'first end', 'second start', 'second end']);
    expect(existsSync(lock)).toBe(false);
  });

  it("takes over a lock left by a process that is gone, and waits for a live one's", async () => {
    writeFileSync(lock, '999999999');
    expect(await withFileLock(lock, 1_000, async () => 'taken', { orRunAnyway: false })).toBe('taken');
    // This process holds it (alive): the wait ends at the timeout.
    writeFileSync(lock, String(process.pid));
    let timedOut = false;
    const started = Date.now();
    expect(await withFileLock(lock, 200, async () => 'ran', { orRunAnyway: false, onTimeout: () => (timedOut = true) })).toBeNull();
    expect(timedOut).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(200);
    expect(await withFileLock(lock, 100, async () => 'ran anyway', { orRunAnyway: true })).toBe('ran anyway');
    // A lock it did not take is not removed by it.
    expect(existsSync(lock)).toBe(true);
    rmSync(lock);
  });

  it('counts an empty lock file as held while it is new (its owner is writing its pid)', async () => {
    writeFileSync(lock, '');
    expect(await withFileLock(lock, 150, async () => 'ran', { orRunAnyway: false })).toBeNull();
    rmSync(lock);
  });
});
