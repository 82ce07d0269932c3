import { Module, type DynamicModule } from '@nestjs/common';
import { CodeGroupCloneJob } from './code-group-clone.job.js';
import { CodeGroupRemoveJob } from './code-group-remove.job.js';
import { CodeGroupsController } from './code-groups.controller.js';
import { CodeGroupsService } from './code-groups.service.js';
import { CodeReleases } from './code-releases.js';
import { RetiredGroupsTask } from './retired-groups.task.js';

/** Shared code groups: checkouts of the shop codebase, their manifests, clone and sync, retirement and removal. */
@Module({})
export class CodebasesModule {
  static forRoot(options: { http: boolean }): DynamicModule {
    return {
      module: CodebasesModule,
      controllers: options.http ? [CodeGroupsController] : [],
      providers: [CodeGroupsService, CodeGroupCloneJob, CodeGroupRemoveJob, CodeReleases, RetiredGroupsTask],
      exports: [CodeGroupsService, CodeReleases, RetiredGroupsTask],
    };
  }
}
