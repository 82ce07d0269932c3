import { Injectable, Optional } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { Gauge } from 'prom-client';
import { DataSource } from 'typeorm';
import { Metrics } from '@app/metrics';
import { FLOATING_IP_TAKEOVER } from './ip-manager/holder-recorder.js';

/**
 * Failover as the catalog records it, read at each scrape: how many times a
 * peer took an owner's floating IP (ip-manager's audit events: a counter
 * that only grows, so `increase()` over a window counts failovers), and how
 * many floating IPs each server holds now.
 */
@Injectable()
export class FailoverMetrics {
  constructor(@InjectDataSource() dataSource: DataSource, @Optional() metrics?: Metrics) {
    if (!metrics) return;
    const registers = [metrics.registry];
    const takeovers = new Gauge({ name: 'shop_floating_ip_takeovers_total', help: 'Floating IPs taken over by a peer dispatcher (failovers), per IP moved, since the catalog began', registers });
    const held = new Gauge({ name: 'shop_floating_ips_held', help: 'Floating IPs by the server holding them now (none: nobody holds it)', labelNames: ['server'] as const, registers });
    metrics.addCollector(async () => {
      const [row] = (await dataSource.query('SELECT COUNT(*) AS n FROM audit_events WHERE action = ?', [FLOATING_IP_TAKEOVER])) as { n: number | string }[];
      takeovers.set(Number(row?.n ?? 0));
      held.reset();
      const rows = (await dataSource.query(
        "SELECT COALESCE(s.hostname, 'none') AS server, COUNT(*) AS n FROM server_ips ip LEFT JOIN servers s ON s.id = ip.active_server_id WHERE ip.kind = 'floating' GROUP BY s.hostname",
      )) as { server: string; n: number | string }[];
      for (const r of rows) held.set({ server: r.server }, Number(r.n));
    });
  }
}
