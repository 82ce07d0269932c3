import { Injectable, Optional } from '@nestjs/common';
import { Gauge } from 'prom-client';
import { Metrics } from '@app/metrics';
import { JOB_STATES } from '@app/catalog';
import { JobRepository } from './job.repository.js';
import { recurringTaskStates } from './recurring-task.js';

/**
 * The queue's and the recurring tasks' gauges, read at each scrape: jobs
 * per state (and unfinished ones per kind), the age of the oldest due job,
 * each task's last success and whether it is stale (no successful run
 * within twice its interval).
 */
@Injectable()
export class QueueGauges {
  constructor(jobs: JobRepository, @Optional() metrics?: Metrics) {
    if (!metrics) return;
    const registers = [metrics.registry];
    const byState = new Gauge({ name: 'shop_jobs', help: 'Queue jobs by state', labelNames: ['state'] as const, registers });
    const pending = new Gauge({ name: 'shop_jobs_pending', help: 'Unfinished queue jobs (ready, blocked, running) by kind and state', labelNames: ['kind', 'state'] as const, registers });
    const oldest = new Gauge({ name: 'shop_jobs_oldest_due_age_seconds', help: 'How long the oldest due ready job has waited', registers });
    const lastSuccess = new Gauge({ name: 'shop_task_last_success_timestamp_seconds', help: "A recurring task's last successful run in this engine (0: none yet)", labelNames: ['task'] as const, registers });
    const stale = new Gauge({ name: 'shop_task_stale', help: 'A recurring task with no successful run within twice its interval (1) or not (0)', labelNames: ['task'] as const, registers });
    metrics.addCollector(async () => {
      const stats = await jobs.stats();
      for (const state of JOB_STATES) byState.set({ state }, stats.byState[state] ?? 0);
      oldest.set(stats.oldestReadyAgeSeconds);
      pending.reset();
      for (const row of await jobs.pendingByKind()) pending.set({ kind: row.kind, state: row.state }, row.count);
    });
    metrics.addCollector(() => {
      const now = Date.now();
      for (const task of recurringTaskStates()) {
        lastSuccess.set({ task: task.name }, task.lastSuccessAt ? task.lastSuccessAt / 1000 : 0);
        stale.set({ task: task.name }, now - (task.lastSuccessAt ?? task.startedAt) > 2 * task.everyMs ? 1 : 0);
      }
    });
  }
}
