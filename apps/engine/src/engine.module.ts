import { Module, type DynamicModule } from '@nestjs/common';
import { LoggerModule } from 'nestjs-pino';
import { AuthModule } from '@app/auth';
import { CatalogModule } from '@app/catalog';
import { ConfigModule, hasRole, type EngineConfig } from '@app/config';
import { EmbeddedSetupService } from './embedded/embedded-setup.service.js';
import { HealthModule } from './health/health.module.js';
import { loggerOptions } from './logging.js';

/**
 * The engine: one NestJS application whose parts are chosen by ENGINE_ROLES.
 * `api` serves HTTP; `worker` and `cron` add the queue workers and recurring
 * tasks (their modules join here as they are built). Every instance shares
 * the catalog: nothing in process memory is the truth.
 */
@Module({})
export class EngineModule {
  static forRoot(config: EngineConfig): DynamicModule {
    const api = hasRole(config, 'api');
    return {
      module: EngineModule,
      imports: [
        ConfigModule.forRoot(config),
        LoggerModule.forRoot(loggerOptions(config)),
        CatalogModule.forRoot({ runMigrations: true }),
        api ? AuthModule.forHttp() : AuthModule.forCli(),
        ...(api ? [HealthModule] : []),
      ],
      providers: config.embedded ? [EmbeddedSetupService] : [],
    };
  }
}
