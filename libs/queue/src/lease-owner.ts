import { createHash } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import { hostname } from 'node:os';

/**
 * Who holds a lease: `host:pid:space:tag`. `host` is for people; `space`
 * names the set of pids the holder lives among (a hash of the kernel's boot
 * id and the pid namespace), so two owners with the same host and space see
 * the same pids and one can tell whether the other's process still runs;
 * `tag` is random (several workers can share one process).
 */
export interface LeaseOwner {
  host: string;
  pid: number;
  space: string;
  tag: string;
}

/** Where this process runs, as lease owners name it. `space` is null where it cannot be known (no /proc). */
export interface ProcessPlace {
  host: string;
  pid: number;
  space: string | null;
}

/** Written in owners when this process cannot name its pid space: never equal to a known one. */
const UNKNOWN_SPACE = 'nospace';

let place: ProcessPlace | null = null;

/**
 * This process's place, read once. Two processes share a space only on the
 * same running kernel and in the same pid namespace: a host name alone is
 * not enough (two machines or containers can be given the same one).
 */
export function currentProcessPlace(): ProcessPlace {
  if (place) return place;
  let space: string | null = null;
  try {
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    const pids = readlinkSync('/proc/self/ns/pid');
    space = createHash('sha256').update(`${boot}\n${pids}`).digest('hex').slice(0, 12);
  } catch (error) {
    // Not Linux: no dead holder is ever recognized early; leases still expire.
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  // ':' separates the fields; the column holds 128 characters.
  const host = hostname().replace(/[:\s]/g, '-').slice(0, 64) || 'localhost';
  place = { host, pid: process.pid, space };
  return place;
}

export function formatLeaseOwner(where: ProcessPlace, tag: string): string {
  return `${where.host}:${where.pid}:${where.space ?? UNKNOWN_SPACE}:${tag}`;
}

/** The parts of an owner written by formatLeaseOwner; null for anything else (an owner of an older engine, a test's name). */
export function parseLeaseOwner(owner: string): LeaseOwner | null {
  const parts = owner.split(':');
  if (parts.length < 4) return null;
  const tag = parts.pop()!;
  const space = parts.pop()!;
  const pid = Number(parts.pop());
  const host = parts.join(':');
  if (!Number.isSafeInteger(pid) || pid <= 0 || !host || !space || space === UNKNOWN_SPACE || !tag) return null;
  return { host, pid, space, tag };
}

export interface ProcessProbe {
  /** Whether a process with this pid runs in this process's pid space. */
  isAlive(pid: number): boolean;
  /** Whether this owner is a worker of this very process that has not stopped. */
  isLiveOwnerHere(owner: string): boolean;
}

/**
 * True only when `owner` surely no longer runs: it lived in this process's
 * pid space and its pid is gone (or is this process, which does not run
 * it). A pid that runs is never taken for dead, even if it may have been
 * reused by another program: the lease's expiry decides then. An owner of
 * another host or pid space is never judged here.
 */
export function isDeadHolderHere(owner: string, here: ProcessPlace, probe: ProcessProbe): boolean {
  const holder = parseLeaseOwner(owner);
  if (!holder || here.space === null) return false;
  if (holder.host !== here.host || holder.space !== here.space) return false;
  // A predecessor that had this process's pid: it cannot run, unless it is one of this process's own workers.
  if (holder.pid === here.pid) return !probe.isLiveOwnerHere(owner);
  return !probe.isAlive(holder.pid);
}

/** Whether `pid` runs (a zombie, killed and not yet waited for, runs nothing). Linux. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ESRCH') return false;
    // EPERM: it runs, as another user.
    if (code === 'EPERM') return true;
    throw error;
  }
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch (error) {
    // It exited between the two looks.
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
  // `pid (comm) S ...`: comm may hold spaces and parentheses, the state follows the last ')'.
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== 'Z' && state !== 'X';
}
