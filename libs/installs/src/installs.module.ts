import { Module } from '@nestjs/common';
import { DatabasesModule } from '@app/databases';
import { MailModule } from '@app/mail';
import { InstallBuildSteps } from './build/build-steps.js';
import { PrepareService } from './prepare.service.js';

/** Installs: the order's prepare phase and the build's steps. */
@Module({ imports: [DatabasesModule, MailModule], providers: [PrepareService, InstallBuildSteps], exports: [PrepareService, InstallBuildSteps] })
export class InstallsModule {}
