import 'reflect-metadata';
import type { AddressInfo } from 'node:net';
import type { DynamicModule, INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { Logger } from 'nestjs-pino';
import { hasRole, type EngineConfig } from '@app/config';
import { EmbeddedSetupService } from './embedded/embedded-setup.service.js';
import type { EmbeddedWebState } from './embedded/embedded-web.js';
import { EngineModule } from './engine.module.js';
import { configureHttpApp } from './http-app.js';

export interface RunningEngine {
  app: INestApplicationContext;
  /** Base URL of the HTTP API, when this instance has the `api` role. */
  url: string | null;
  /** The embedded default's admin token for this run. */
  adminToken: string | null;
  /** The embedded default: whether its private nginx serves the local server's shops (on which port), or why not. */
  shops: EmbeddedWebState | null;
  close(): Promise<void>;
}

/**
 * Boots an engine instance with the roles of its configuration. `module` is
 * the engine's own unless given (a test boots the engine with providers of
 * its own added: a module importing `EngineModule.forRoot(config)`).
 */
export async function startEngine(config: EngineConfig, module: DynamicModule = EngineModule.forRoot(config)): Promise<RunningEngine> {
  const api = hasRole(config, 'api');
  const app = api
    ? await NestFactory.create<NestExpressApplication>(module, { bufferLogs: true, bodyParser: false })
    : await NestFactory.createApplicationContext(module, { bufferLogs: true });
  app.useLogger(app.get(Logger));
  app.enableShutdownHooks();
  if (api) configureHttpApp(app as NestExpressApplication);
  // init runs pending migrations (MIGRATIONS_RUN) before anything is served.
  await app.init();

  let adminToken: string | null = null;
  let shops: EmbeddedWebState | null = null;
  if (config.embedded) {
    const setup = app.get(EmbeddedSetupService);
    await setup.ensureLocalServer();
    await setup.ensureSampleCodeGroups();
    adminToken = await setup.freshAdminToken();
    if (hasRole(config, 'worker')) shops = await setup.serveShops();
  }

  let url: string | null = null;
  if (api) {
    const http = app as NestExpressApplication;
    await http.listen(config.port, config.host);
    const { port } = http.getHttpServer().address() as AddressInfo;
    const host = config.host.includes(':') ? `[${config.host}]` : config.host;
    url = `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`;
  }
  return { app, url, adminToken, shops, close: () => app.close() };
}
