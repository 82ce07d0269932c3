import { Module, type DynamicModule } from '@nestjs/common';
import { DatabasesModule } from '@app/databases';
import { DnsModule } from '@app/dns';
import { CodeReleases } from '@app/codebases';
import { FtpModule } from '@app/ftp';
import { MailModule } from '@app/mail';
import { WebserverModule } from '@app/webserver';
import { InstallBuildSteps } from '../build-saga/build-steps.js';
import { InstallUsers } from '../build-saga/install-users.js';
import { InstallValues } from '../build-saga/install-values.js';
import { BackupPurge, BackupPurgeTask } from './backup-purge.task.js';
import { FtpPermissions } from './ftp-permissions.js';
import { FtpResetJob, FtpResetPlanner, FtpResetService } from './ftp-reset.service.js';
import { InstallBackups } from './install-backups.service.js';
import { RemovalController } from './removal.controller.js';
import { RemovalContexts } from './removal-context.js';
import { RemovalSweep } from './removal-sweep.service.js';
import { RemoveInstallJob } from './remove-install.job.js';
import { RemoveInstallService } from './remove-install.service.js';
import { RemovalRecordSteps, RemovalServing, RemoveInstallSteps } from './remove-install.steps.js';
import { RestoreInstallJob, RestoreInstallSteps } from './restore-install.job.js';
import { RestoreInstallService } from './restore-install.service.js';
import { TenantDumps } from './tenant-dumps.js';

/**
 * Issue 17's removal: remove an install (backup, saga, verification sweep),
 * restore it from its backup, purge expired backups (cron role), reset its
 * FTP permissions. In engines the installs module (global) provides the
 * build's steps; the CLI (`jobs: false`) gets the few the dry runs read.
 * DNS through `SiteDns` (DnsModule: PowerDNS when DNS_API_URL is set).
 */
@Module({})
export class RemovalModule {
  static forRoot(options: { http: boolean; jobs: boolean }): DynamicModule {
    return {
      module: RemovalModule,
      imports: [DatabasesModule, WebserverModule, DnsModule, FtpModule, ...(options.jobs ? [] : [MailModule])],
      controllers: options.http ? [RemovalController] : [],
      providers: [
        RemoveInstallService, RestoreInstallService, FtpResetService, FtpResetPlanner, FtpPermissions, TenantDumps, InstallBackups, BackupPurge,
        // The CLI: what the FTP reset's dry run reads (the build's tree plan), without the installs module's jobs and tasks.
        ...(options.jobs ? [] : [InstallBuildSteps, InstallValues, InstallUsers, CodeReleases]),
        ...(options.jobs ? [RemovalContexts, RemovalSweep, RemoveInstallSteps, RemovalServing, RemovalRecordSteps, RemoveInstallJob, RestoreInstallSteps, RestoreInstallJob, FtpResetJob, BackupPurgeTask] : []),
      ],
      exports: [RemoveInstallService, RestoreInstallService, FtpResetService, FtpResetPlanner, BackupPurge, InstallBackups],
    };
  }
}
