export * from './schedule.js';
export * from './task-registry.js';
export * from './task-run.job.js';
export * from './task-scheduler.service.js';
export * from './task-status.service.js';
export * from './tasks.module.js';
