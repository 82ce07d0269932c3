export * from './keepalived-render.js';
export * from './ip-manager/node-state.js';
export * from './ip-manager/ip-manager.js';
export * from './ip-manager/journal.js';
export * from './ip-manager/holder-recorder.js';
export * from './failover-plan.js';
export * from './keepalived-apply.service.js';
export * from './failover.module.js';
