import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';

export interface FloatingIpHolder {
  ip: string;
  group: string | null;
  owner: string;
  /** The server holding it now as ip-manager last recorded it; null: nobody. */
  holder: string | null;
}

/** Who holds each floating IP, and the failover nodes whose keepalived apply failed (for /health). */
@Injectable()
export class FailoverStatus {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  async holders(): Promise<FloatingIpHolder[]> {
    const rows = (await this.dataSource.query(
      `SELECT ip.ip AS ip, ip.failover_group AS grp, o.hostname AS owner, h.hostname AS holder FROM server_ips ip
         JOIN servers o ON o.id = ip.server_id LEFT JOIN servers h ON h.id = ip.active_server_id
       WHERE ip.kind = 'floating' ORDER BY ip.failover_group, ip.ip`,
    )) as { ip: string; grp: string | null; owner: string; holder: string | null }[];
    return rows.map((r) => ({ ip: r.ip, group: r.grp, owner: r.owner, holder: r.holder }));
  }

  async failingNodes(): Promise<{ hostname: string; error: string }[]> {
    return (await this.dataSource.query(
      'SELECT s.hostname AS hostname, n.last_error AS error FROM failover_nodes n JOIN servers s ON s.id = n.server_id WHERE n.last_error IS NOT NULL ORDER BY s.hostname',
    )) as { hostname: string; error: string }[];
  }
}
