import 'reflect-metadata';
import { Module, type INestApplicationContext, type Provider, type Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { CatalogModule } from '@app/catalog';
import { ConfigModule } from '@app/config';
import { QueueModule, type QueueWorkerOptions } from '@app/queue';
import { testEngineConfig } from './catalog.js';

/** A worker process in miniature: catalog, queue and the given handler providers, in this process. */
export async function startQueueContext(
  catalogUrl: string,
  handlers: Provider[],
  worker: QueueWorkerOptions | null = { concurrency: 4, pollMs: 20, reapEveryMs: 200 },
  modules: Type[] = [],
  env: Record<string, string> = {},
): Promise<INestApplicationContext> {
  @Module({
    imports: [
      ConfigModule.forRoot(testEngineConfig(catalogUrl, env)),
      CatalogModule.forRoot({ runMigrations: true }),
      QueueModule.forRoot({ worker }),
      ...modules,
    ],
    providers: handlers,
  })
  class QueueTestModule {}
  const app = await NestFactory.createApplicationContext(QueueTestModule, { logger: false });
  app.enableShutdownHooks();
  return app;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls until `probe` returns a value, or fails after `timeoutMs`. */
export async function eventually<T>(probe: () => Promise<T | null | undefined | false>, timeoutMs = 20_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}
