export * from './theme-sync.module.js';
export * from './theme-sync.service.js';
export * from './theme-sync.task.js';
export * from './theme-sync-plan.js';
export * from './tree-digest.js';
