import { AuditListCommand } from './audit-list.command.js';
import { CloudAddInstallCommand, CloudDrainCommand, CloudLeaseCommand, CloudRemoveCommand, CloudRemoveInstallCommand } from './cloud.command.js';
import { CodeGroupLockCommand, CodeGroupUnlockCommand } from './code-group-lock.command.js';
import { CodeGroupRollbackCommand, CodeGroupUpdateCommand } from './code-group-update.command.js';
import { CodeGroupPhpCheckCommand } from './code-group-php-check.command.js';
import { CodeGroupRemoveCommand } from './code-group-remove.command.js';
import { IpManagerCommand, KeepalivedApplyCommand, KeepalivedNodeCommand } from './failover.command.js';
import { InstallCodebaseCommand } from './install-codebase.command.js';
import { InstallDowngradeCommand } from './install-downgrade.command.js';
import { SiteAddCommand } from './site-add.command.js';
import { SiteHostnameCommand } from './site-hostname.command.js';
import { SiteRemoveCommand } from './site-remove.command.js';
import { InstallFtpResetCommand } from './install-ftp-reset.command.js';
import { InstallRemoveCommand } from './install-remove.command.js';
import { InstallRestoreCommand } from './install-restore.command.js';
import { InstallRewritesCommand } from './install-rewrites.command.js';
import {
  JobsCancelCommand,
  JobsListCommand,
  JobsRemoveCommand,
  JobsRetryCommand,
  JobsShowCommand,
  QueueStatsCommand,
} from './jobs.command.js';
import { MigrateCommand } from './migrate.command.js';
import { MoveDatabaseCommand } from './move-database.command.js';
import { MigrationGenerateCommand } from './migration-generate.command.js';
import { RebuildNginxCommand } from './rebuild-nginx.command.js';
import { RerunQueueItemCommand } from './rerun-queue-item.command.js';
import { SecretsRotateCommand } from './secrets-rotate.command.js';
import { SiteAcmeCommand, SiteCertificateCommand } from './site-certificate.command.js';
import {
  ServerAddCommand,
  ServerCheckCommand,
  ServerIpsAddCommand,
  ServerIpsRemoveCommand,
  ServerListCommand,
  ServerRemoveCommand,
  ServerShowCommand,
  ServerStateCommand,
} from './servers.command.js';
import { SqlApplyCommand } from './sql-apply.command.js';
import { TasksListCommand, TasksRunCommand } from './tasks.command.js';
import { IncidentsListCommand } from './incidents.command.js';
import { TokenCreateCommand } from './token-create.command.js';
import { TokenListCommand } from './token-list.command.js';
import { TokenRevokeCommand } from './token-revoke.command.js';

export { SnippetError } from './cli-output.js';

/** Every snippet the CLI offers; one file per admin task. */
export const SNIPPET_COMMANDS = [
  TasksListCommand,
  TasksRunCommand,
  IncidentsListCommand,
  MigrateCommand,
  MigrationGenerateCommand,
  TokenCreateCommand,
  TokenListCommand,
  TokenRevokeCommand,
  JobsListCommand,
  JobsShowCommand,
  JobsRetryCommand,
  JobsCancelCommand,
  JobsRemoveCommand,
  QueueStatsCommand,
  RerunQueueItemCommand,
  ServerListCommand,
  ServerShowCommand,
  ServerAddCommand,
  ServerStateCommand,
  ServerRemoveCommand,
  ServerCheckCommand,
  ServerIpsAddCommand,
  ServerIpsRemoveCommand,
  RebuildNginxCommand,
  SecretsRotateCommand,
  CodeGroupRemoveCommand,
  CodeGroupPhpCheckCommand,
  CodeGroupLockCommand,
  CodeGroupUnlockCommand,
  CloudAddInstallCommand,
  CloudRemoveInstallCommand,
  CloudDrainCommand,
  CloudRemoveCommand,
  CloudLeaseCommand,
  SqlApplyCommand,
  CodeGroupUpdateCommand,
  CodeGroupRollbackCommand,
  InstallCodebaseCommand,
  SiteAddCommand, SiteRemoveCommand, SiteHostnameCommand, InstallDowngradeCommand,
  InstallRemoveCommand,
  InstallRestoreCommand,
  InstallFtpResetCommand,
  AuditListCommand,
  InstallRewritesCommand,
  SiteCertificateCommand,
  SiteAcmeCommand,
  MoveDatabaseCommand,
  KeepalivedNodeCommand, KeepalivedApplyCommand, IpManagerCommand,
];
