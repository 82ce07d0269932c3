import { ApiToken } from './api-token.entity.js';
import { AuditEvent } from './audit-event.entity.js';
import { CodeRelease } from './code-release.entity.js';
import { CodeUpdateItem } from './code-update-item.entity.js';
import { CodeUpdate } from './code-update.entity.js';
import { DatabaseUpdate } from './database-update.entity.js';
import { DispatcherConfig } from './dispatcher-config.entity.js';
import { FailoverNode } from './failover-node.entity.js';
import { QueueListener } from './queue-listener.entity.js';
import { FtpAccount } from './ftp-account.entity.js';
import { HandlerConfig } from './handler-config.entity.js';
import { InstallBackup } from './install-backup.entity.js';
import { IpPoolAlert } from './ip-pool-alert.entity.js';
import { InstallServer } from './install-server.entity.js';
import { InstallSiteIp } from './install-site-ip.entity.js';
import { InstallSite } from './install-site.entity.js';
import { Install } from './install.entity.js';
import { JobLog } from './job-log.entity.js';
import { Job } from './job.entity.js';
import { PinRule } from './pin-rule.entity.js';
import { PoolQuarantine } from './pool-quarantine.entity.js';
import { RecurringTaskRecord } from './recurring-task.entity.js';
import { SagaStep } from './saga-step.entity.js';
import { ServerIp } from './server-ip.entity.js';
import { Server } from './server.entity.js';
import { SharedCodeGroup } from './shared-code-group.entity.js';
import { SiteIncident, SiteHealthState } from './site-incident.entity.js';
import { SiteName } from './site-name.entity.js';
import { AccessLogCursor, SiteUsage } from './site-usage.entity.js';
import { StartupMount } from './startup-mount.entity.js';
import { ThemeSyncState } from './theme-sync.entity.js';
import { DatabaseMove } from './database-move.entity.js';
import { DatabaseMoveItem } from './database-move-item.entity.js';
import { WebQuarantine } from './web-quarantine.entity.js';

export * from './api-token.entity.js';
export * from './audit-event.entity.js';
export * from './base.entity.js';
export * from './code-release.entity.js';
export * from './code-update-item.entity.js';
export * from './code-update.entity.js';
export * from './database-update.entity.js';
export * from './dispatcher-config.entity.js';
export * from './failover-node.entity.js';
export * from './ftp-account.entity.js';
export * from './handler-config.entity.js';
export * from './install-backup.entity.js';
export * from './ip-pool-alert.entity.js';
export * from './install-server.entity.js';
export * from './install-site-ip.entity.js';
export * from './install-site.entity.js';
export * from './install.entity.js';
export * from './job-log.entity.js';
export * from './job.entity.js';
export * from './pin-rule.entity.js';
export * from './pool-quarantine.entity.js';
export * from './recurring-task.entity.js';
export * from './saga-step.entity.js';
export * from './server-ip.entity.js';
export * from './server.entity.js';
export * from './shared-code-group.entity.js';
export * from './site-incident.entity.js';
export * from './site-name.entity.js';
export * from './site-usage.entity.js';
export * from './startup-mount.entity.js';
export * from './theme-sync.entity.js';
export * from './database-move.entity.js';
export * from './database-move-item.entity.js';
export * from './web-quarantine.entity.js';
export * from './queue-listener.entity.js';

/** Every catalog entity, passed to TypeORM explicitly (globs load a second copy under Jest). */
export const CATALOG_ENTITIES = [
  Server,
  ServerIp,
  SharedCodeGroup,
  Install,
  InstallSite,
  InstallSiteIp,
  SiteName,
  InstallServer,
  InstallBackup,
  DatabaseUpdate,
  StartupMount,
  FtpAccount,
  PinRule,
  DispatcherConfig,
  WebQuarantine,
  HandlerConfig,
  PoolQuarantine,
  CodeUpdate,
  CodeRelease,
  CodeUpdateItem,
  Job,
  JobLog,
  QueueListener,
  RecurringTaskRecord,
  SiteUsage,
  AccessLogCursor,
  SiteHealthState,
  SiteIncident,
  IpPoolAlert,
  ThemeSyncState,
  DatabaseMove,
  DatabaseMoveItem,
  FailoverNode,
  SagaStep,
  AuditEvent,
  ApiToken,
];
