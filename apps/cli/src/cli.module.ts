import { Module, type DynamicModule } from '@nestjs/common';
import { AuditModule } from '@app/audit';
import { AuthModule } from '@app/auth';
import { CatalogModule } from '@app/catalog';
import { CertificatesModule } from '@app/certificates';
import { CloudHandlersModule } from '@app/cloud-handlers';
import { CodebaseUpdateModule } from '@app/codebase-update';
import { ConfigModule, type EngineConfig } from '@app/config';
import { DatabaseMoveModule } from '@app/database-move';
import { FailoverModule } from '@app/failover';
import { HostsModule } from '@app/hosts';
import { RemovalModule } from '@app/installs';
import { InstallRewritesModule } from '@app/installs';
import { QueueModule } from '@app/queue';
import { SitesModule } from '@app/sites';
import { TaskStatus } from '@app/tasks';
import { WebserverModule } from '@app/webserver';
import { SNIPPET_COMMANDS } from '../../../snippets/index.js';

/** The snippets' application: the same libs as the engine, no HTTP, no workers. */
@Module({})
export class CliModule {
  static forRoot(config: EngineConfig): DynamicModule {
    return {
      module: CliModule,
      imports: [
        ConfigModule.forRoot(config),
        // Only the `migrate` snippet changes the schema; nothing migrates behind an operator's back.
        CatalogModule.forRoot({ runMigrations: false }),
        QueueModule.forRoot({ worker: null }),
        HostsModule.forRoot({ http: false }),
        AuthModule.forCli(),
        WebserverModule,
        // The cloud snippets queue jobs; the sagas run in the engines' workers.
        CloudHandlersModule.forRoot({ http: false, jobs: false }),
        // sql:apply queues its update; the snippet runs in the engines' workers.
        CodebaseUpdateModule.forRoot({ http: false, jobs: false }),
        // install:remove / install:restore queue their sagas; install:ftp-reset plans its dry run here.
        RemovalModule.forRoot({ http: false, jobs: false }),
        AuditModule.forRoot({ http: false }),
        // The site operations' snippets queue their sagas; they run in the engines' workers.
        SitesModule.forRoot({ http: false, jobs: false }),
        InstallRewritesModule,
        CertificatesModule.forRoot({ http: false, jobs: false }),
        // move-database queues its move (its dry run renders here); the sagas run in the engines' workers.
        DatabaseMoveModule.forRoot({ http: false, jobs: false }),
        FailoverModule,
      ],
      // The tasks' status only: the scheduler belongs to engines with the cron role, never to a snippet.
      providers: [...SNIPPET_COMMANDS, TaskStatus],
    };
  }
}
