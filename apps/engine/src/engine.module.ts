import { Module, type DynamicModule } from '@nestjs/common';
import { LoggerModule } from 'nestjs-pino';
import { AccountingModule } from '@app/accounting';
import { AuditModule } from '@app/audit';
import { AuthModule } from '@app/auth';
import { CatalogModule } from '@app/catalog';
import { CertificatesModule } from '@app/certificates';
import { CloudHandlersModule } from '@app/cloud-handlers';
import { CodebaseUpdateModule } from '@app/codebase-update';
import { CodebasesModule } from '@app/codebases';
import { ConfigModule, hasRole, type EngineConfig } from '@app/config';
import { CronFilesModule } from '@app/cron-files';
import { DatabaseMoveModule } from '@app/database-move';
import { FtpModule } from '@app/ftp';
import { HostsModule } from '@app/hosts';
import { InstallsModule, RemovalModule } from '@app/installs';
import { MetricsModule } from '@app/metrics';
import { QueueModule } from '@app/queue';
import { SagaModule } from '@app/saga';
import { SearchModule } from '@app/search';
import { SiteHealthModule } from '@app/site-health';
import { SitesModule } from '@app/sites';
import { TasksModule } from '@app/tasks';
import { ThemeSyncModule } from '@app/theme-sync';
import { WebserverModule } from '@app/webserver';
import { EmbeddedSetupService } from './embedded/embedded-setup.service.js';
import { FailoverModule } from '@app/failover';
import { HealthModule } from './health/health.module.js';
import { loggerOptions } from './logging.js';

/** How often each worker reclaims expired leases: a killed worker's job is back within lease + this. */
const REAP_EVERY_MS = 5_000;

/**
 * The engine: one NestJS application whose parts are chosen by ENGINE_ROLES.
 * `api` serves HTTP; `worker` runs queue jobs; `cron` queues the recurring
 * tasks' ticks (libs/tasks), which workers run. Every instance shares
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
        MetricsModule.forRoot({ http: api }),
        QueueModule.forRoot({
          worker: hasRole(config, 'worker') ? { ...config.worker, reapEveryMs: REAP_EVERY_MS } : null,
          http: api,
        }),
        SagaModule,
        TasksModule,
        HostsModule.forRoot({ http: api }),
        CodebasesModule.forRoot({ http: api }),
        InstallsModule.forRoot({ http: api }),
        WebserverModule,
        AccountingModule.forRoot({ http: api }),
        SiteHealthModule.forRoot({ http: api }),
        SearchModule,
        FtpModule,
        ThemeSyncModule,
        CronFilesModule,
        CloudHandlersModule.forRoot({ http: api, jobs: true }),
        CodebaseUpdateModule.forRoot({ http: api, jobs: true }),
        SitesModule.forRoot({ http: api, jobs: true }),
        RemovalModule.forRoot({ http: api, jobs: true }),
        AuditModule.forRoot({ http: api }),
        CertificatesModule.forRoot({ http: api, jobs: true }),
        DatabaseMoveModule.forRoot({ http: api, jobs: true }),
        FailoverModule,
        api ? AuthModule.forHttp() : AuthModule.forCli(),
        ...(api ? [HealthModule] : []),
      ],
      providers: config.embedded ? [EmbeddedSetupService] : [],
    };
  }
}
