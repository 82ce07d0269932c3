import { closeSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';

/** An empty lock file (its owner between creating and writing it) counts as held for this long. */
const EMPTY_GRACE_MS = 2_000;
const POLL_MS = 25;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** True when the lock file at `path` belongs to no running process (all its users run on this node). */
function stale(path: string): boolean {
  let text: string;
  let ageMs: number;
  try {
    text = readFileSync(path, 'utf8').trim();
    ageMs = Date.now() - statSync(path).mtimeMs;
  } catch {
    return false;
  }
  if (text === '') return ageMs > EMPTY_GRACE_MS;
  const pid = Number(text);
  return !(Number.isInteger(pid) && pid > 0) || !alive(pid);
}

/**
 * Runs `work` holding the lock file `path` (created exclusively, holding this
 * process's pid; one left by a dead process is taken over). Waits at most
 * `timeoutMs` for it; then `work` runs anyway when `orRunAnyway`, else null is
 * returned without running it. ip-manager's runs on one node serialize with
 * it: keepalived starts a notify script per event without waiting for the
 * previous one, so a STOP run could otherwise act, or record, before the
 * MASTER run still in progress.
 */
export async function withFileLock<T>(path: string, timeoutMs: number, work: () => Promise<T>, options: { orRunAnyway: boolean; onTimeout?: () => void }): Promise<T | null> {
  const deadline = Date.now() + timeoutMs;
  let held = false;
  while (!held) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      try {
        writeSync(fd, String(process.pid));
      } finally {
        closeSync(fd);
      }
      held = true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      if (stale(path)) {
        rmSync(path, { force: true });
        continue;
      }
      if (Date.now() >= deadline) {
        options.onTimeout?.();
        if (!options.orRunAnyway) return null;
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }
  try {
    return await work();
  } finally {
    if (held) rmSync(path, { force: true });
  }
}
