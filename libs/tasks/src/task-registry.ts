import { Injectable, type OnModuleInit } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import { RecurringTask } from '@app/queue';
import { TaskSchedule } from './schedule.js';

export interface RegisteredTask {
  task: RecurringTask;
  schedule: TaskSchedule;
}

/** The recurring tasks this engine's modules declare (every provider extending RecurringTask), by name. */
@Injectable()
export class TaskRegistry implements OnModuleInit {
  private readonly tasks = new Map<string, RegisteredTask>();

  constructor(private readonly discovery: DiscoveryService) {}

  onModuleInit(): void {
    const problems: string[] = [];
    for (const wrapper of this.discovery.getProviders()) {
      const instance = wrapper.instance as unknown;
      if (!(instance instanceof RecurringTask)) continue;
      if (this.tasks.has(instance.name)) {
        if (this.tasks.get(instance.name)!.task !== instance) problems.push(`two recurring tasks are named ${instance.name}`);
        continue;
      }
      try {
        this.tasks.set(instance.name, { task: instance, schedule: new TaskSchedule(instance.options) });
      } catch (error) {
        problems.push(`recurring task ${instance.name}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    if (problems.length > 0) throw new Error(`The engine cannot start:\n  - ${problems.join('\n  - ')}`);
  }

  get(name: string): RegisteredTask | undefined {
    return this.tasks.get(name);
  }

  all(): RegisteredTask[] {
    return [...this.tasks.values()].sort((a, b) => a.task.name.localeCompare(b.task.name));
  }
}
