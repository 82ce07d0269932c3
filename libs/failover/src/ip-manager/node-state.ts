/**
 * What `ip-manager` needs to act without the catalog: this node, its
 * interface, and every failover group with its floating IPs. The engine
 * writes it beside keepalived's configuration on each apply, so a node whose
 * catalog is unreachable still moves the right IPs.
 */
export interface NodeState {
  version: 1;
  serverId: number;
  hostname: string;
  interface: string;
  groups: { name: string; ownerServerId: number; ips: string[] }[];
}

export function parseNodeState(text: string): NodeState {
  const state = JSON.parse(text) as NodeState;
  if (state?.version !== 1 || !Number.isInteger(state.serverId) || typeof state.interface !== 'string' || !Array.isArray(state.groups)) {
    throw new Error('not an ip-manager state file (version 1)');
  }
  return state;
}
