/** How a lease is kept: its length, the renewal period, and the pause before retrying a renewal that failed. */
export interface LeaseTimings {
  leaseMs: number;
  renewEveryMs: number;
  retryEveryMs: number;
}

/** Renewed every third of the lease; a failed renewal is tried again after a fifteenth (1 s for 15 s). */
export function leaseTimings(leaseMs: number): LeaseTimings {
  return {
    leaseMs,
    renewEveryMs: Math.max(50, Math.floor(leaseMs / 3)),
    retryEveryMs: Math.max(20, Math.floor(leaseMs / 15)),
  };
}

/** Why a lease was given up: the catalog said another holds it, or no renewal got through for a whole lease. */
export type LeaseLoss = 'taken' | 'unreachable';

/**
 * Keeps a claimed job's lease while its handler runs. One renewal at a
 * time; one that fails (the catalog did not answer) is retried soon, so a
 * hiccup of a few seconds costs nothing. The lease is given up only when it
 * is surely gone: the catalog refused the renewal (fence or state changed),
 * or no renewal got through for a whole lease counted from when the last
 * good one was sent. By then the lease has expired in the catalog too (its
 * expiry was set after that send) and another worker may hold the job, so
 * this one must stop touching anything.
 */
export class LeaseHeartbeat {
  private renewTimer: NodeJS.Timeout | null = null;
  private expiryTimer: NodeJS.Timeout | null = null;
  private stopped = false;

  /**
   * `heldFrom`: when the claim that set the lease was sent (Date.now()).
   * `renew` answers whether the lease is still this holder's.
   */
  constructor(
    private readonly renew: () => Promise<boolean>,
    private readonly lost: (why: LeaseLoss) => void,
    private readonly failed: (error: unknown) => void,
    private readonly timings: LeaseTimings,
    private heldFrom: number,
  ) {}

  start(): void {
    this.armExpiry();
    this.schedule(this.heldFrom + this.timings.renewEveryMs - Date.now());
  }

  stop(): void {
    this.stopped = true;
    if (this.renewTimer) clearTimeout(this.renewTimer);
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.renewTimer = setTimeout(() => void this.beat(), Math.max(0, delayMs));
  }

  private async beat(): Promise<void> {
    const sentAt = Date.now();
    let held: boolean;
    try {
      held = await this.renew();
    } catch (error) {
      if (this.stopped) return;
      this.failed(error);
      this.schedule(this.timings.retryEveryMs);
      return;
    }
    if (this.stopped) return;
    if (!held) {
      this.stop();
      this.lost('taken');
      return;
    }
    this.heldFrom = sentAt;
    this.armExpiry();
    this.schedule(this.timings.renewEveryMs);
  }

  private armExpiry(): void {
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.expiryTimer = setTimeout(() => {
      if (this.stopped) return;
      this.stop();
      this.lost('unreachable');
    }, Math.max(0, this.heldFrom + this.timings.leaseMs - Date.now()));
  }
}
