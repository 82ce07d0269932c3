import { Injectable } from '@nestjs/common';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Durations from milliseconds to minutes: commands, steps, jobs, rebuilds. */
const SECONDS_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

/** A scrape-time reading (catalog counts, pool sizes), run before every export. */
export type MetricsCollector = () => Promise<void> | void;

/**
 * The engine's Prometheus metrics, one registry per engine (several engines
 * in one process, as in the tests, never share or collide). Libraries that
 * observe something get this service injected (optionally: code built
 * without Nest observes nothing) and call the instruments below; counts kept
 * in the catalog (jobs, installs, IPs) are read when scraped.
 */
@Injectable()
export class Metrics {
  readonly registry = new Registry();
  private readonly collectors: MetricsCollector[] = [];

  readonly httpRequests = new Counter({
    name: 'shop_http_requests_total',
    help: 'HTTP requests answered, by method, route and status',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  });

  readonly httpDuration = new Histogram({
    name: 'shop_http_request_duration_seconds',
    help: 'HTTP request latency, by method, route and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: SECONDS_BUCKETS,
    registers: [this.registry],
  });

  readonly jobDuration = new Histogram({
    name: 'shop_job_duration_seconds',
    help: "Queue jobs' run time in this engine, by kind and outcome (done, retry, dead, deferred, lost)",
    labelNames: ['kind', 'outcome'] as const,
    buckets: SECONDS_BUCKETS,
    registers: [this.registry],
  });

  readonly sagaStepDuration = new Histogram({
    name: 'shop_saga_step_duration_seconds',
    help: "Saga steps' run time (all tries of one run), by saga, step, direction (execute, compensate) and outcome",
    labelNames: ['saga', 'step', 'direction', 'outcome'] as const,
    buckets: SECONDS_BUCKETS,
    registers: [this.registry],
  });

  readonly sagaStepFailures = new Counter({
    name: 'shop_saga_step_failures_total',
    help: 'Saga steps that failed after their tries, by saga, step and direction',
    labelNames: ['saga', 'step', 'direction'] as const,
    registers: [this.registry],
  });

  readonly orderToLive = new Histogram({
    name: 'shop_order_to_live_seconds',
    help: 'From the order (install created) to the install live (answering through its dispatchers)',
    buckets: [0.5, 1, 2, 3, 5, 8, 13, 21, 34, 60, 120, 300, 900],
    registers: [this.registry],
  });

  readonly rebuilds = new Counter({
    name: 'shop_webserver_rebuilds_total',
    help: 'nginx and php-fpm configuration applies, by server, kind (nginx, php-fpm) and outcome',
    labelNames: ['server', 'kind', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly rebuildDuration = new Histogram({
    name: 'shop_webserver_rebuild_duration_seconds',
    help: 'nginx and php-fpm configuration applies (render, write, test, reload), by server and kind',
    labelNames: ['server', 'kind'] as const,
    buckets: SECONDS_BUCKETS,
    registers: [this.registry],
  });

  readonly quarantined = new Counter({
    name: 'shop_webserver_quarantined_total',
    help: "Installs' files left out of a configuration because the server refused them, by server and kind",
    labelNames: ['server', 'kind'] as const,
    registers: [this.registry],
  });

  readonly commandDuration = new Histogram({
    name: 'shop_server_command_duration_seconds',
    help: 'Commands run on servers (SSH or local), by server, transport and outcome (ok, failed, error)',
    labelNames: ['server', 'transport', 'outcome'] as const,
    buckets: SECONDS_BUCKETS,
    registers: [this.registry],
  });

  readonly sshConnections = new Gauge({
    name: 'shop_ssh_pool_connections',
    help: 'SSH connections this engine holds open (one per server in use)',
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'shop_engine_' });
  }

  /** A reading taken at every scrape (catalog counts); its failure leaves the others be. */
  addCollector(collector: MetricsCollector): void {
    this.collectors.push(collector);
  }

  /** The Prometheus text exposition, scrape-time readings taken first. */
  async exposition(): Promise<{ contentType: string; body: string }> {
    await Promise.allSettled(this.collectors.map(async (c) => c()));
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
