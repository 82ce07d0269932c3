import { Injectable, Optional } from '@nestjs/common';
import { Gauge } from 'prom-client';
import { Metrics } from '@app/metrics';
import { JOB_STATES } from '@app/catalog';
import { JobRepository } from './job.repository.js';

/**
 * The queue's gauges, read at each scrape: jobs per state (and unfinished
 * ones per kind) and the age of the oldest due job.
 */
@Injectable()
export class QueueGauges {
  constructor(jobs: JobRepository, @Optional() metrics?: Metrics) {
    if (!metrics) return;
    const registers = [metrics.registry];
    const byState = new Gauge({ name: 'shop_jobs', help: 'Queue jobs by state', labelNames: ['state'] as const, registers });
    const pending = new Gauge({ name: 'shop_jobs_pending', help: 'Unfinished queue jobs (ready, blocked, running) by kind and state', labelNames: ['kind', 'state'] as const, registers });
    const oldest = new Gauge({ name: 'shop_jobs_oldest_due_age_seconds', help: 'How long the oldest due ready job has waited', registers });
    metrics.addCollector(async () => {
      const stats = await jobs.stats();
      for (const state of JOB_STATES) byState.set({ state }, stats.byState[state] ?? 0);
      oldest.set(stats.oldestReadyAgeSeconds);
      pending.reset();
      for (const row of await jobs.pendingByKind()) pending.set({ kind: row.kind, state: row.state }, row.count);
    });
  }
}
