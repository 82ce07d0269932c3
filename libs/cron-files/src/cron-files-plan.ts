import { CRON_FILE_MODE, CRON_FILE_NAME, parseCronMarker } from '@app/installs';
import { sha256Of, type CronListing } from './cron-listing.js';

/** A cron file the catalog says a server must have: a live install, its row there active. */
export interface WantedCronFile {
  serverId: number;
  installId: number;
  /** `shop-<fs name>`. */
  name: string;
  content: string;
}

/** Why a wanted file is written again. */
export type CronDrift = 'missing' | 'differs' | 'mode' | 'owner' | 'not-a-file';

export interface CronRestore {
  serverId: number;
  installId: number;
  name: string;
  content: string;
  drift: CronDrift[];
}

/** A file the engine made (its name and marker agree) that no server sharing the directory wants: removed once the catalog confirms. */
export interface CronStray {
  installId: number;
  fsName: string;
  name: string;
}

/** One cron directory (the servers that name it: one, or several rows of one machine). */
export interface CronDirectoryInput {
  listing: CronListing;
  /** What each of its servers must have. */
  wanted: readonly WantedCronFile[];
  /** Names left to a job at work (a build, a removal, a handler coming or going) or that cannot be rendered: neither written nor removed. */
  held: ReadonlySet<string>;
}

export interface CronDirectoryPlan {
  restores: CronRestore[];
  strays: CronStray[];
  unchanged: number;
  /** Entries named like ours that the engine did not make (no marker, another name's marker, a link...): never touched. */
  foreign: string[];
  /** Names two servers of one directory want with different content: left as they are. */
  conflicts: string[];
}

/**
 * Compares one directory's listing with what the catalog renders: a wanted
 * file that is missing, differs, or lost its mode or owner is written again;
 * an entry nobody wants is a stray only if it is a regular file whose first
 * line is the engine's marker for the very name it has. Anything else is
 * left alone.
 */
export function planCronDirectory({ listing, wanted, held }: CronDirectoryInput): CronDirectoryPlan {
  const plan: CronDirectoryPlan = { restores: [], strays: [], unchanged: 0, foreign: [], conflicts: [] };
  const byName = new Map<string, WantedCronFile>();
  const conflicting = new Set<string>();
  for (const w of wanted) {
    const other = byName.get(w.name);
    if (other && other.content !== w.content) conflicting.add(w.name);
    else byName.set(w.name, w);
  }
  plan.conflicts = [...conflicting].sort();
  for (const [name, w] of [...byName].sort(([a], [b]) => a.localeCompare(b))) {
    if (conflicting.has(name) || held.has(name)) continue;
    const entry = listing.entries.get(name);
    const drift: CronDrift[] = [];
    if (!entry) drift.push('missing');
    else if (entry.kind !== 'file') drift.push('not-a-file');
    else {
      if (entry.sha256 !== sha256Of(w.content)) drift.push('differs');
      if (entry.mode !== CRON_FILE_MODE) drift.push('mode');
      if (entry.uid !== listing.uid) drift.push('owner');
    }
    if (drift.length === 0) plan.unchanged++;
    else plan.restores.push({ serverId: w.serverId, installId: w.installId, name, content: w.content, drift });
  }
  for (const entry of listing.entries.values()) {
    if (byName.has(entry.name) || conflicting.has(entry.name) || held.has(entry.name)) continue;
    const fsName = CRON_FILE_NAME.exec(entry.name)?.[1];
    const marker = entry.kind === 'file' ? parseCronMarker(entry.firstLine) : null;
    if (fsName && marker && marker.fsName === fsName) plan.strays.push({ installId: marker.installId, fsName, name: entry.name });
    else plan.foreign.push(entry.name);
  }
  return plan;
}
