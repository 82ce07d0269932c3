import { Module, type DynamicModule } from '@nestjs/common';
import { CodeReleases } from '@app/codebases';
import { DatabasesModule } from '@app/databases';
import { WebserverModule } from '@app/webserver';
import { ChangeCodebaseController } from './change-codebase.controller.js';
import { ChangeCodebaseJob } from './change-codebase.job.js';
import { ChangeCodebaseService } from './change-codebase.service.js';
import { ChangeCodebaseSteps } from './change-codebase.steps.js';
import { HomeServers } from './home-servers.js';
import { InstallUpdateJob } from './install-update.job.js';
import { RolloutJob } from './rollout.job.js';
import { RolloutsController } from './rollouts.controller.js';
import { RolloutsService } from './rollouts.service.js';
import { SqlSnippetJob } from './sql-snippet.job.js';
import { SqlSnippetsController } from './sql-snippets.controller.js';
import { SqlSnippetsService } from './sql-snippets.service.js';

/**
 * The design card's codebase-update module: operations on the code and
 * databases of many installs at once, each a parent job with a report per
 * install (code_updates, code_update_items): SQL snippets, and rollouts of
 * a code group to a revision (canary, per-install switch, rollback); and
 * one install moved to another group of the same revision (a saga job).
 * `jobs: false` (the CLI) leaves out the job handlers, which run in engines.
 */
@Module({})
export class CodebaseUpdateModule {
  static forRoot(options: { http: boolean; jobs: boolean }): DynamicModule {
    return {
      module: CodebaseUpdateModule,
      imports: [DatabasesModule, WebserverModule],
      controllers: options.http ? [SqlSnippetsController, RolloutsController, ChangeCodebaseController] : [],
      providers: [SqlSnippetsService, RolloutsService, CodeReleases, ChangeCodebaseService, HomeServers, ...(options.jobs ? [SqlSnippetJob, RolloutJob, InstallUpdateJob, ChangeCodebaseSteps, ChangeCodebaseJob] : [])],
      exports: [SqlSnippetsService, RolloutsService, ChangeCodebaseService],
    };
  }
}
