import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { Gauge } from 'prom-client';
import { DataSource } from 'typeorm';
import { IpPoolAlert, type ServerIpKind } from '@app/catalog';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { MailService } from '@app/mail';
import { Metrics } from '@app/metrics';
import { RecurringTask, sqlDialect, type TaskRunContext } from '@app/queue';

/** One server's pool of one kind: how many IPs it has and how many no site holds. */
export interface IpPool {
  serverId: number;
  server: string;
  kind: ServerIpKind;
  total: number;
  free: number;
  low: boolean;
}

/**
 * The seed's "some small notifier": dedicated and floating IPs run out as
 * paid orders come (a shared IP never does). A pool whose free IPs fall
 * below IP_POOL_LOW_WATER is low: operations are mailed once per crossing
 * (the alert row is made when it crosses and goes when the pool is
 * refilled), `/health` names it and `shop_ip_pool_low` is 1.
 */
@Injectable()
export class IpPoolLowWater {
  private readonly logger = new Logger('IpPoolLowWater');

  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly mail: MailService,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
    @Optional() metrics?: Metrics,
  ) {
    if (!metrics) return;
    const low = new Gauge({ name: 'shop_ip_pool_low', help: 'A server pool of dedicated or floating IPs below IP_POOL_LOW_WATER free (1) or not (0)', labelNames: ['server', 'kind'] as const, registers: [metrics.registry] });
    metrics.addCollector(async () => {
      low.reset();
      for (const pool of await this.pools()) low.set({ server: pool.server, kind: pool.kind }, pool.low ? 1 : 0);
    });
  }

  /** Every server's dedicated and floating pools, with their free IPs now. */
  async pools(): Promise<IpPool[]> {
    const rows = (await this.dataSource.query(
      `SELECT s.id AS serverId, s.hostname AS server, ip.kind AS kind, COUNT(*) AS total, SUM(CASE WHEN held.id IS NULL THEN 1 ELSE 0 END) AS free
         FROM server_ips ip
         JOIN servers s ON s.id = ip.server_id
         LEFT JOIN install_site_ips held ON held.exclusive_ip_id = ip.id
       WHERE ip.kind IN ('dedicated', 'floating')
       GROUP BY s.id, s.hostname, ip.kind
       ORDER BY s.id, ip.kind`,
    )) as { serverId: number; server: string; kind: ServerIpKind; total: number | string; free: number | string }[];
    const mark = this.config.ipPoolLowWater;
    return rows.map((r) => ({ serverId: Number(r.serverId), server: r.server, kind: r.kind, total: Number(r.total), free: Number(r.free), low: mark > 0 && Number(r.free) < mark }));
  }

  /** Alerts made for pools that crossed (mailed once), removed for pools refilled. */
  async check(log: (line: string) => void = () => undefined): Promise<{ crossed: IpPool[]; refilled: number }> {
    const pools = await this.pools();
    const alerts = this.dataSource.getRepository(IpPoolAlert);
    const existing = await alerts.find();
    const key = (serverId: number, kind: string) => `${serverId}/${kind}`;
    const lowNow = new Map(pools.filter((p) => p.low).map((p) => [key(p.serverId, p.kind), p]));
    let refilled = 0;
    for (const alert of existing) {
      if (lowNow.has(key(alert.serverId, alert.kind))) continue;
      await alerts.delete({ id: alert.id });
      refilled++;
      log(`server ${alert.serverId}: ${alert.kind} IPs above the low-water mark again`);
    }
    const crossed: IpPool[] = [];
    const known = new Set(existing.map((a) => key(a.serverId, a.kind)));
    for (const pool of lowNow.values()) {
      if (known.has(key(pool.serverId, pool.kind))) continue;
      try {
        await alerts.insert({ serverId: pool.serverId, kind: pool.kind, free: pool.free, mailed: false });
      } catch (error) {
        // Another engine made it: that one mails. Any other failure is this check's.
        if (!sqlDialect(this.dataSource).isDuplicateKey(error)) throw error;
        continue;
      }
      crossed.push(pool);
      log(`${pool.server}: ${pool.free} free ${pool.kind} IP(s) of ${pool.total}, below ${this.config.ipPoolLowWater}`);
      await this.notify(pool);
    }
    return { crossed, refilled };
  }

  private async notify(pool: IpPool): Promise<void> {
    const subject = `[shop hosting] ${pool.server}: ${pool.free} free ${pool.kind} IP(s) left`;
    if (!this.config.opsEmail) {
      this.logger.warn(`OPS_EMAIL is not set: not mailed: ${subject}`);
      return;
    }
    await this.mail.send({
      to: this.config.opsEmail,
      subject,
      text: `${pool.server} has ${pool.free} free ${pool.kind} IP(s) of ${pool.total}, below the low-water mark of ${this.config.ipPoolLowWater} (IP_POOL_LOW_WATER). Paid orders take one per dispatcher: add IPs with server:ips:add before it runs out.\n`,
      messageId: `<ip-pool-low-${pool.serverId}-${pool.kind}-${Date.now()}@shop-engine>`,
    });
    await this.dataSource.getRepository(IpPoolAlert).update({ serverId: pool.serverId, kind: pool.kind }, { mailed: true });
  }
}

/** The low-water check every minute. */
@Injectable()
export class IpPoolLowWaterTask extends RecurringTask {
  constructor(private readonly low: IpPoolLowWater) {
    super({ name: 'IpPoolLowWater', everyMs: 60_000, failure: 'the IP pool low-water check failed' });
  }

  protected async tick(context: TaskRunContext): Promise<void> {
    await this.low.check((line) => context.log(line));
  }
}
