export * from './bind-mounts.plan.js';
export * from './bind-mounts.service.js';
export * from './bind-mounts.task.js';
export * from './ftp-config.task.js';
export * from './ftp-reader.js';
export * from './ftp-servers.service.js';
export * from './ftp.module.js';
export * from './proftpd-conf.js';
