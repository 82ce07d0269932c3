export * from './cron-files.module.js';
export * from './cron-files.service.js';
export * from './cron-files.task.js';
export * from './cron-files-plan.js';
export * from './cron-listing.js';
