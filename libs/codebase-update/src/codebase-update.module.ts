import { Module, type DynamicModule } from '@nestjs/common';
import { DatabasesModule } from '@app/databases';
import { SqlSnippetJob } from './sql-snippet.job.js';
import { SqlSnippetsController } from './sql-snippets.controller.js';
import { SqlSnippetsService } from './sql-snippets.service.js';

/**
 * The design card's codebase-update module: operations on the code and
 * databases of many installs at once, each a parent job with a report per
 * install (code_updates, code_update_items). So far: SQL snippets.
 * `jobs: false` (the CLI) leaves out the job handlers, which run in engines.
 */
@Module({})
export class CodebaseUpdateModule {
  static forRoot(options: { http: boolean; jobs: boolean }): DynamicModule {
    return {
      module: CodebaseUpdateModule,
      imports: [DatabasesModule],
      controllers: options.http ? [SqlSnippetsController] : [],
      providers: [SqlSnippetsService, ...(options.jobs ? [SqlSnippetJob] : [])],
      exports: [SqlSnippetsService],
    };
  }
}
