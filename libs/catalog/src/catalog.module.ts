import { Global, Module, type DynamicModule } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { catalogDataSourceOptions } from './catalog-data-source.js';
import { CatalogStatusService } from './catalog-status.service.js';
import { CATALOG_ENTITIES } from './entities/index.js';
import { ApiTokenRepository } from './repositories/api-token.repository.js';
import { AuditEventRepository } from './repositories/audit-event.repository.js';
import { ServerRepository } from './repositories/server.repository.js';

const REPOSITORIES = [ApiTokenRepository, AuditEventRepository, ServerRepository];

/**
 * The catalog database: connection, entities and repositories. Other libs
 * depend on this one; it depends on nothing but the configuration.
 */
@Global()
@Module({})
export class CatalogModule {
  /** `runMigrations`: apply pending migrations at start (the engine does, per MIGRATIONS_RUN). */
  static forRoot(options: { runMigrations: boolean }): DynamicModule {
    return {
      module: CatalogModule,
      imports: [
        TypeOrmModule.forRootAsync({
          inject: [ENGINE_CONFIG],
          useFactory: async (config: EngineConfig) => ({
            ...(await catalogDataSourceOptions(config.catalog)),
            migrationsRun: options.runMigrations && config.migrationsRun,
            migrationsTransactionMode: 'each' as const,
            // Fail the boot promptly with the driver's message instead of retrying for minutes.
            retryAttempts: 2,
            retryDelay: 1000,
          }),
        }),
        TypeOrmModule.forFeature(CATALOG_ENTITIES),
      ],
      providers: [CatalogStatusService, ...REPOSITORIES],
      exports: [TypeOrmModule, CatalogStatusService, ...REPOSITORIES],
    };
  }
}
