import { Module } from '@nestjs/common';
import { CodeReleases } from '@app/codebases';
import { ThemeSync } from './theme-sync.service.js';
import { ThemeSyncTask } from './theme-sync.task.js';

/** Theme sync: each install's copied paths from its master to its other servers where they changed (the ThemeSync task). */
@Module({
  // CodeReleases (stateless): a release's recorded manifest, as the installs module reads it.
  providers: [ThemeSync, ThemeSyncTask, CodeReleases],
  exports: [ThemeSync],
})
export class ThemeSyncModule {}
