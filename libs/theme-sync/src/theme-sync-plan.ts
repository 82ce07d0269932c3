import type { HomeDigest } from './tree-digest.js';

/** An install with copied paths and other servers, as the run sees it. */
export interface SyncCandidate {
  installId: number;
  masterId: number;
  /** Its other servers (install_servers rows that are not the master, active). */
  targetIds: number[];
}

export interface PairState {
  digest: string | null;
  syncedAt: Date | null;
  failedAt: Date | null;
}

export interface SyncPair {
  installId: number;
  masterId: number;
  targetId: number;
  digest: string;
}

export interface SyncPlan {
  /** Pairs whose master tree changed since it was last synced there, oldest sync first. */
  pending: SyncPair[];
  unchanged: number;
  /** Pairs whose last attempt failed or was refused a short while ago: tried again once `retryAfterMs` passed. */
  retrying: number;
  /** Pairs left for a later run: the server is down (caught up then). */
  down: { installId: number; targetId: number }[];
  /** Installs not synced anywhere: their master is down or did not answer, or its home lacks the install's marker. */
  notLooked: { installId: number; why: string }[];
}

const pairKey = (installId: number, serverId: number) => `${installId}:${serverId}`;
export { pairKey };

/**
 * Which (install, other server) pairs to sync: those whose master digest
 * differs from the one last synced there. A down server's pairs wait (their
 * recorded digest stays, so they are synced once it is back); an install
 * whose master home was not fingerprinted, or is not the install's, is
 * synced nowhere. A pair that failed (or was refused) is tried again after
 * `retry.afterMs`. Oldest sync (never first) leads, so a run cut short by its
 * budget does not starve the same pairs every time.
 */
export function planSyncs(
  candidates: readonly SyncCandidate[],
  digests: ReadonlyMap<number, HomeDigest | string>,
  expectedMarker: (installId: number) => string,
  states: ReadonlyMap<string, PairState>,
  isDown: (serverId: number) => boolean,
  retry: { now: number; afterMs: number } = { now: 0, afterMs: 0 },
): SyncPlan {
  const plan: SyncPlan = { pending: [], unchanged: 0, retrying: 0, down: [], notLooked: [] };
  for (const c of candidates) {
    const found = digests.get(c.installId);
    if (found === undefined || typeof found === 'string') {
      plan.notLooked.push({ installId: c.installId, why: found ?? 'not fingerprinted' });
      continue;
    }
    if (found.markerMd5 !== expectedMarker(c.installId) || found.digest === null) {
      plan.notLooked.push({ installId: c.installId, why: 'its home on the master lacks this install\'s marker' });
      continue;
    }
    for (const targetId of c.targetIds) {
      const state = states.get(pairKey(c.installId, targetId));
      if (state?.digest === found.digest) {
        plan.unchanged++;
        continue;
      }
      // A home that is not the install's, or a relay that failed, is not asked again every minute.
      if (state?.failedAt && retry.afterMs > 0 && retry.now - state.failedAt.getTime() < retry.afterMs) {
        plan.retrying++;
        continue;
      }
      if (isDown(targetId)) {
        plan.down.push({ installId: c.installId, targetId });
        continue;
      }
      plan.pending.push({ installId: c.installId, masterId: c.masterId, targetId, digest: found.digest });
    }
  }
  const last = (p: SyncPair) => {
    const s = states.get(pairKey(p.installId, p.targetId));
    return Math.max(s?.syncedAt?.getTime() ?? 0, s?.failedAt?.getTime() ?? 0);
  };
  plan.pending.sort((a, b) => last(a) - last(b) || a.installId - b.installId || a.targetId - b.targetId);
  return plan;
}
