export * from './access-log-tally.js';
export * from './accounting.module.js';
export * from './site-accounting.service.js';
export * from './site-accounting.task.js';
