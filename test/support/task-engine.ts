import 'reflect-metadata';
import { appendFileSync } from 'node:fs';
import { Injectable, Module, type DynamicModule } from '@nestjs/common';
import { loadConfig, type ConfigEnv, type EngineConfig } from '@app/config';
import { RecurringTask, type TaskRunContext } from '@app/queue';
import { EngineModule } from '../../apps/engine/src/engine.module.js';
import { startEngine } from '../../apps/engine/src/start-engine.js';

/**
 * An engine process for the recurring-tasks test: the real engine (every
 * module, the roles of ENGINE_ROLES, production's reap and poll), with test tasks that write what they do to
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
    // The engine as production runs it (every module, the roles of ENGINE_ROLES, production's reap and poll), plus the test tasks.
    return { module: TaskEngineModule, imports: [EngineModule.forRoot(config)], providers: [CounterTask, SlowTask, HangTask] };
  }
}

const config = loadConfig(process.env as ConfigEnv);
const engine = await startEngine(config, TaskEngineModule.forRoot(config));
process.stdout.write(`task engine ${process.pid} ready ${engine.url ?? ''}\n`);
