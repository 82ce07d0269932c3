import { Injectable, Optional } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { Gauge } from 'prom-client';
import { DataSource } from 'typeorm';
import { RecurringTaskRecord, type TaskResult } from '@app/catalog';
import { Metrics } from '@app/metrics';
import { TaskRegistry } from './task-registry.js';

export interface TaskView {
  name: string;
  schedule: string;
  intervalMs: number;
  lastTick: Date | null;
  /** The next tick (null when this engine's build does not have the task, as a CLI's). */
  nextTick: Date | null;
  lastStartedAt: Date | null;
  lastFinishedAt: Date | null;
  lastSuccessAt: Date | null;
  lastResult: TaskResult | null;
  lastError: string | null;
  lastDurationMs: number | null;
  runs: number;
  skipped: number;
  /** Running now (started after its last end). */
  running: boolean;
  /** No successful run within twice its interval (a hung or failing task, or no engine scheduling it). */
  stale: boolean;
}

/**
 * What every recurring task did, from the catalog (every engine's runs):
 * for `tasks:list`, `/health` (a stale task makes it degraded, naming the
 * task) and the metrics.
 */
@Injectable()
export class TaskStatus {
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    @Optional() private readonly registry?: TaskRegistry,
    @Optional() metrics?: Metrics,
  ) {
    if (!metrics) return;
    const registers = [metrics.registry];
    const lastSuccess = new Gauge({ name: 'shop_task_last_success_timestamp_seconds', help: "A recurring task's last successful run, on any engine (0: none yet)", labelNames: ['task'] as const, registers });
    const stale = new Gauge({ name: 'shop_task_stale', help: 'A recurring task with no successful run within twice its interval (1) or not (0)', labelNames: ['task'] as const, registers });
    const duration = new Gauge({ name: 'shop_task_last_duration_seconds', help: "A recurring task's last run time", labelNames: ['task'] as const, registers });
    metrics.addCollector(async () => {
      for (const task of await this.list()) {
        lastSuccess.set({ task: task.name }, task.lastSuccessAt ? task.lastSuccessAt.getTime() / 1000 : 0);
        stale.set({ task: task.name }, task.stale ? 1 : 0);
        if (task.lastDurationMs !== null) duration.set({ task: task.name }, task.lastDurationMs / 1000);
      }
    });
  }

  async list(now = new Date()): Promise<TaskView[]> {
    const rows = await this.dataSource.getRepository(RecurringTaskRecord).find({ order: { name: 'ASC' } });
    return rows.map((row) => {
      const schedule = this.registry?.get(row.name)?.schedule;
      const since = row.lastSuccessAt ?? row.createdAt;
      return {
        name: row.name,
        schedule: row.schedule,
        intervalMs: row.intervalMs,
        lastTick: row.lastTick,
        nextTick: schedule ? schedule.nextTick(now) : null,
        lastStartedAt: row.lastStartedAt,
        lastFinishedAt: row.lastFinishedAt,
        lastSuccessAt: row.lastSuccessAt,
        lastResult: row.lastResult,
        lastError: row.lastError,
        lastDurationMs: row.lastDurationMs,
        runs: row.runs,
        skipped: row.skipped,
        running: row.lastStartedAt !== null && (row.lastFinishedAt === null || row.lastFinishedAt < row.lastStartedAt),
        stale: now.getTime() - since.getTime() > 2 * row.intervalMs,
      };
    });
  }
}
