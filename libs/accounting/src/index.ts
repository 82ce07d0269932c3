export * from './access-log-count.js';
export * from './accounting.module.js';
export * from './site-accounting.service.js';
export * from './site-accounting.task.js';
