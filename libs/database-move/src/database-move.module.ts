import { Module, type DynamicModule } from '@nestjs/common';
import { CodeReleases } from '@app/codebases';
import { DatabasesModule } from '@app/databases';
import { FtpModule } from '@app/ftp';
import { InstallBuildSteps, InstallUsers, InstallValues } from '@app/installs';
import { MailModule } from '@app/mail';
import { WebserverModule } from '@app/webserver';
import { DatabaseMoveChecks } from './database-move.checks.js';
import { DatabaseMoveJob } from './database-move.job.js';
import { DatabaseMovesController } from './database-moves.controller.js';
import { DatabaseMovesService } from './database-moves.service.js';
import { InstallDatabaseMoveJob } from './install-database-move.job.js';
import { InstallHomes } from './install-homes.js';
import { CacheClears } from './cache-clears.js';
import { LoginChecks } from './login-checks.js';
import { MoveChildJobs } from './move-child-jobs.repository.js';
import { MoveSagasRunner } from './move-sagas.runner.js';

/**
 * Issue 19's database failover: `move-database` (the API and the snippet),
 * a parent job with a saga per install (database_moves,
 * database_move_items). In engines the installs module (global) provides
 * the build's config rendering; the CLI (`jobs: false`) gets what its dry
 * run renders, without the installs module's jobs and tasks.
 */
@Module({})
export class DatabaseMoveModule {
  static forRoot(options: { http: boolean; jobs: boolean }): DynamicModule {
    return {
      module: DatabaseMoveModule,
      imports: [DatabasesModule, WebserverModule, ...(options.jobs ? [] : [MailModule, FtpModule])],
      controllers: options.http ? [DatabaseMovesController] : [],
      providers: [
        DatabaseMovesService, DatabaseMoveChecks, LoginChecks, InstallHomes,
        ...(options.jobs ? [DatabaseMoveJob, InstallDatabaseMoveJob, MoveSagasRunner, MoveChildJobs, CacheClears] : [InstallBuildSteps, InstallValues, InstallUsers, CodeReleases]),
      ],
      exports: [DatabaseMovesService],
    };
  }
}
