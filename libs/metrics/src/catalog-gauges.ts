import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { Gauge } from 'prom-client';
import { DataSource } from 'typeorm';
import { Metrics } from './metrics.service.js';

/**
 * Counts the catalog holds, read at each scrape (a few grouped queries on
 * indexed columns): installs by status, free IPs per server and kind,
 * quarantined installs per server. Every engine exports the same values;
 * a dashboard takes the max over instances.
 */
@Injectable()
export class CatalogGauges {
  constructor(metrics: Metrics, @InjectDataSource() private readonly dataSource: DataSource) {
    const registers = [metrics.registry];
    const installs = new Gauge({ name: 'shop_installs', help: 'Installs by status', labelNames: ['status'] as const, registers });
    const freeIps = new Gauge({
      name: 'shop_ip_pool_free',
      help: 'IPs of a server that no site holds, by server and kind (a shared IP is never held: its count is the pool)',
      labelNames: ['server', 'kind'] as const,
      registers,
    });
    const quarantines = new Gauge({
      name: 'shop_webserver_quarantines',
      help: 'Installs currently quarantined out of a server configuration, by server and kind (nginx, php-fpm)',
      labelNames: ['server', 'kind'] as const,
      registers,
    });
    metrics.addCollector(async () => {
      installs.reset();
      for (const row of await this.rows<{ status: string; n: number | string }>('SELECT status, COUNT(*) AS n FROM installs GROUP BY status')) {
        installs.set({ status: row.status }, Number(row.n));
      }
    });
    metrics.addCollector(async () => {
      freeIps.reset();
      const rows = await this.rows<{ server: string; kind: string; n: number | string }>(
        `SELECT s.hostname AS server, ip.kind AS kind, COUNT(*) AS n FROM server_ips ip
           JOIN servers s ON s.id = ip.server_id
           LEFT JOIN install_site_ips held ON held.exclusive_ip_id = ip.id
         WHERE held.id IS NULL GROUP BY s.hostname, ip.kind`,
      );
      for (const row of rows) freeIps.set({ server: row.server, kind: row.kind }, Number(row.n));
    });
    metrics.addCollector(async () => {
      quarantines.reset();
      for (const [table, kind] of [['web_quarantines', 'nginx'], ['pool_quarantines', 'php-fpm']] as const) {
        const rows = await this.rows<{ server: string; n: number | string }>(
          `SELECT s.hostname AS server, COUNT(*) AS n FROM ${table} q JOIN servers s ON s.id = q.server_id GROUP BY s.hostname`,
        );
        for (const row of rows) quarantines.set({ server: row.server, kind }, Number(row.n));
      }
    });
  }

  private rows<T>(sql: string): Promise<T[]> {
    return this.dataSource.query(sql);
  }
}
