import { Module } from '@nestjs/common';
import { ThemeSync } from './theme-sync.service.js';
import { ThemeSyncTask } from './theme-sync.task.js';

/** Theme sync: each install's copied paths from its master to its other servers where they changed (the ThemeSync task). */
@Module({
  providers: [ThemeSync, ThemeSyncTask],
  exports: [ThemeSync],
})
export class ThemeSyncModule {}
