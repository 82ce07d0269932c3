import type { NodeState } from './node-state.js';

/** keepalived's notify events; STOP is notify_stop (keepalived shutting down leaves our IPs in place otherwise: they are not its VIPs). */
export type VrrpEvent = 'MASTER' | 'BACKUP' | 'FAULT' | 'STOP';
export const VRRP_EVENTS: readonly VrrpEvent[] = ['MASTER', 'BACKUP', 'FAULT', 'STOP'];

/** The node's network, as ip-manager acts on it (Linux adapter: ip, ping, arping). */
export interface NodeNetwork {
  holds(ip: string): Promise<boolean>;
  /** True when something else answers for the IP (ping, then a duplicate-address ARP probe). */
  answersElsewhere(ip: string): Promise<boolean>;
  add(ip: string): Promise<void>;
  /** Gratuitous ARP, so the switch and the neighbours learn the new holder at once. */
  announce(ip: string): Promise<void>;
  remove(ip: string): Promise<void>;
}

export type IpAction = 'taken' | 'kept' | 'skipped-answers-elsewhere' | 'released' | 'not-held' | 'failed';

/** One line of the journal: what this node did to one IP, recorded to the catalog when it can be. */
export interface IpRecord {
  at: string;
  serverId: number;
  hostname: string;
  group: string;
  event: VrrpEvent;
  ip: string;
  action: IpAction;
  /** The node holding the IP after the action, as far as this node knows (null: it released it). */
  holderServerId: number | null;
  attempts: number;
  error?: string;
}

export interface IpManagerOptions {
  attempts?: number;
  retryDelayMs?: number;
  /** A peer's IP is left alone only when it answers this many probes in a row (a stopping peer is releasing it right now). */
  probes?: number;
  probeGapMs?: number;
  log?: (line: Record<string, unknown>) => void;
  now?: () => Date;
}

/**
 * The seed's ip_manager on keepalived's notify events. MASTER of a group:
 * take each of its IPs, except a peer's IP that still answers from elsewhere
 * (the seed's ping check: its holder is alive, taking it would split the
 * traffic). The owner takes its own IPs without the check: on preemption the
 * peer is releasing them at the same moment. A peer's IP is left alone only
 * when it answers several probes in a row (a stopping peer releases it within
 * a second). BACKUP, FAULT or STOP: release the group's IPs (a node whose
 * interface failed or whose keepalived stops must not keep answering for them).
 * Every step is retried, and returned as a record for the journal.
 */
export class IpManager {
  private readonly attempts: number;
  private readonly retryDelayMs: number;
  private readonly probes: number;
  private readonly probeGapMs: number;
  private readonly log: (line: Record<string, unknown>) => void;
  private readonly now: () => Date;

  constructor(
    private readonly network: NodeNetwork,
    options: IpManagerOptions = {},
  ) {
    this.attempts = options.attempts ?? 3;
    this.retryDelayMs = options.retryDelayMs ?? 200;
    this.probes = options.probes ?? 5;
    this.probeGapMs = options.probeGapMs ?? 400;
    this.log = options.log ?? (() => undefined);
    this.now = options.now ?? (() => new Date());
  }

  async handle(state: NodeState, groupName: string, event: VrrpEvent): Promise<IpRecord[]> {
    const group = state.groups.find((g) => g.name === groupName);
    if (!group) throw new Error(`failover group ${groupName} is not in the state file of ${state.hostname}`);
    const own = group.ownerServerId === state.serverId;
    // The IPs in parallel: a takeover of many IPs waits for the slowest probe, not their sum.
    return Promise.all(
      [...group.ips].sort().map(async (ip) => {
        const base = { serverId: state.serverId, hostname: state.hostname, group: group.name, event, ip };
        let attempt = 0;
        for (;;) {
          attempt++;
          try {
            const done = event === 'MASTER' ? await this.take(ip, own) : await this.release(ip);
            const record: IpRecord = { at: this.now().toISOString(), ...base, action: done, holderServerId: done === 'taken' || done === 'kept' ? state.serverId : null, attempts: attempt };
            if (done === 'skipped-answers-elsewhere') record.holderServerId = null;
            this.log({ msg: `ip-manager ${event} ${group.name}: ${ip} ${done}`, ...record });
            return record;
          } catch (error) {
            const message = error instanceof Error ? error.message : String(error);
            if (attempt < this.attempts) {
              this.log({ msg: `ip-manager ${event} ${group.name}: ${ip} attempt ${attempt} failed, retrying`, error: message });
              await new Promise((r) => setTimeout(r, this.retryDelayMs * attempt));
              continue;
            }
            const record: IpRecord = { at: this.now().toISOString(), ...base, action: 'failed', holderServerId: null, attempts: attempt, error: message };
            this.log({ msg: `ip-manager ${event} ${group.name}: ${ip} FAILED`, ...record });
            return record;
          }
        }
      }),
    );
  }

  private async take(ip: string, own: boolean): Promise<IpAction> {
    if (await this.network.holds(ip)) {
      await this.network.announce(ip);
      return 'kept';
    }
    if (!own && (await this.answersPersistently(ip))) return 'skipped-answers-elsewhere';
    await this.network.add(ip);
    await this.network.announce(ip);
    return 'taken';
  }

  private async answersPersistently(ip: string): Promise<boolean> {
    for (let probe = 1; probe <= this.probes; probe++) {
      if (!(await this.network.answersElsewhere(ip))) return false;
      if (probe < this.probes) await new Promise((r) => setTimeout(r, this.probeGapMs));
    }
    return true;
  }

  private async release(ip: string): Promise<IpAction> {
    if (!(await this.network.holds(ip))) return 'not-held';
    await this.network.remove(ip);
    return 'released';
  }
}
