import type { FailoverGroupInput } from './keepalived-render.js';

export interface FloatingIpRow {
  id: number;
  ip: string;
  serverId: number;
  failoverGroup: string | null;
}

/**
 * The failover groups of the inventory from its floating IPs: a group is
 * owned by the server whose pool holds its IPs (the seed: carp1 is
 * dispatch1's). Its VRRP id is its rank by its oldest IP, so it stays put as
 * IPs are added. A group spread over two owners is refused: nobody could
 * say whose priority is higher.
 */
export function failoverGroups(rows: readonly FloatingIpRow[]): { groups: FailoverGroupInput[]; problems: string[] } {
  const byName = new Map<string, FloatingIpRow[]>();
  const problems: string[] = [];
  for (const row of rows) {
    if (!row.failoverGroup) {
      problems.push(`floating IP ${row.ip} has no failover group`);
      continue;
    }
    byName.set(row.failoverGroup, [...(byName.get(row.failoverGroup) ?? []), row]);
  }
  const ordered = [...byName].sort(([, a], [, b]) => Math.min(...a.map((r) => r.id)) - Math.min(...b.map((r) => r.id)));
  const groups: FailoverGroupInput[] = [];
  for (const [name, ips] of ordered) {
    const owners = [...new Set(ips.map((r) => r.serverId))];
    if (owners.length > 1) {
      problems.push(`failover group ${name} has IPs in the pools of servers ${owners.join(', ')}: a group belongs to one server`);
      continue;
    }
    groups.push({ name, vrid: groups.length + 1, ownerServerId: owners[0]!, ips: ips.map((r) => r.ip).sort() });
  }
  if (groups.length > 255) problems.push(`${groups.length} failover groups: VRRP has 255 router ids`);
  return { groups, problems };
}
