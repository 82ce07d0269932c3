import type { DataSource } from 'typeorm';
import { AuditEvent, ServerIp } from '@app/catalog';
import type { IpRecord } from './ip-manager.js';

/** Audit actions of ip-manager; the failover metric counts FLOATING_IP_TAKEOVER (a peer took an owner's IP). */
export const FLOATING_IP_TAKEOVER = 'floating-ip.takeover';
export const FLOATING_IP_TAKEN = 'floating-ip.take';
export const FLOATING_IP_RELEASED = 'floating-ip.release';
export const FLOATING_IP_LEFT = 'floating-ip.skip';
export const FLOATING_IP_FAILED = 'floating-ip.fail';

const ACTION: Record<IpRecord['action'], string | null> = {
  taken: FLOATING_IP_TAKEN,
  kept: null,
  'not-held': null,
  released: FLOATING_IP_RELEASED,
  'skipped-answers-elsewhere': FLOATING_IP_LEFT,
  failed: FLOATING_IP_FAILED,
};

/**
 * Records a node's journal in the catalog, in order: the holder of each IP
 * (server_ips.active_server_id) and an audit event per change. A release
 * clears the holder only if it is still this node, so a late release never
 * erases the peer that took the IP meanwhile.
 */
export async function recordIpActions(dataSource: DataSource, records: readonly IpRecord[]): Promise<void> {
  await dataSource.transaction(async (m) => {
    for (const r of records) {
      if (r.action === 'taken' || r.action === 'kept') {
        await m.update(ServerIp, { ip: r.ip, kind: 'floating' }, { activeServerId: r.serverId });
      } else if (r.action === 'released') {
        await m.update(ServerIp, { ip: r.ip, kind: 'floating', activeServerId: r.serverId }, { activeServerId: null });
      }
      const ip = await m.findOne(ServerIp, { where: { ip: r.ip } });
      const action = r.action === 'taken' && ip && ip.serverId !== r.serverId ? FLOATING_IP_TAKEOVER : ACTION[r.action];
      if (!action) continue;
      const details: Record<string, unknown> = { ip: r.ip, group: r.group, event: r.event, node: r.hostname, at: r.at, attempts: r.attempts, owner: ip?.serverId ?? null };
      if (r.error) details.error = r.error;
      await m.save(m.create(AuditEvent, { actor: `ip-manager@${r.hostname}`, via: 'cli', action, targetType: 'server_ip', targetId: ip ? String(ip.id) : r.ip, details }));
    }
  });
}
