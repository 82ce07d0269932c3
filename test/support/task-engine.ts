import 'reflect-metadata';
import { appendFileSync } from 'node:fs';
import { Injectable, Module, type DynamicModule } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { CatalogModule } from '@app/catalog';
import { ConfigModule, loadConfig, type ConfigEnv, type EngineConfig } from '@app/config';
import { QueueModule, RecurringTask, type TaskRunContext } from '@app/queue';
import { TasksModule } from '@app/tasks';

/**
 * An engine process for the recurring-tasks test: the real queue, worker,
 * scheduler and task run job, with test tasks that write what they do to
 * TASK_LOG (one line per event, appended: `task tick pid event time`).
 * Started from dist by test/e2e/recurring-tasks.e2e-spec.ts.
 */
const record = (task: string, context: TaskRunContext, event: string) =>
  appendFileSync(process.env.TASK_LOG!, `${task} ${context.tick.toISOString()} ${process.pid} ${event} ${Date.now()}\n`);

@Injectable()
class CounterTask extends RecurringTask {
  constructor() {
    super({ name: 'TestCounter', everyMs: 1000, failure: 'the counter failed' });
  }

  protected async tick(context: TaskRunContext): Promise<void> {
    record(this.name, context, 'run');
  }
}

@Injectable()
class SlowTask extends RecurringTask {
  constructor() {
    super({ name: 'TestSlow', everyMs: 1000, failure: 'the slow task failed' });
  }

  protected async tick(context: TaskRunContext): Promise<void> {
    record(this.name, context, 'start');
    await new Promise((resolve) => setTimeout(resolve, Number(process.env.TASK_SLOW_MS ?? 2500)));
    record(this.name, context, 'end');
  }
}

@Injectable()
class HangTask extends RecurringTask {
  constructor() {
    super({ name: 'TestHang', everyMs: 2000, enabled: process.env.TASK_HANG === '1', failure: 'the hanging task failed' });
  }

  protected async tick(context: TaskRunContext): Promise<void> {
    record(this.name, context, 'start');
    // Never ends, whatever it is told.
    await new Promise(() => undefined);
  }
}

@Module({})
class TaskEngineModule {
  static forRoot(config: EngineConfig): DynamicModule {
    return {
      module: TaskEngineModule,
      imports: [
        ConfigModule.forRoot(config),
        CatalogModule.forRoot({ runMigrations: true }),
        QueueModule.forRoot({ worker: { ...config.worker, reapEveryMs: 1_000 } }),
        TasksModule,
      ],
      providers: [CounterTask, SlowTask, HangTask],
    };
  }
}

const config = loadConfig(process.env as ConfigEnv);
const app = await NestFactory.createApplicationContext(TaskEngineModule.forRoot(config), { logger: ['error', 'warn'] });
app.enableShutdownHooks();
process.stdout.write(`task engine ${process.pid} ready\n`);
