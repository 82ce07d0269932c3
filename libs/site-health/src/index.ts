export * from './incidents.controller.js';
export * from './site-health.module.js';
export * from './site-health.service.js';
export * from './site-health.task.js';
export * from './dto/incidents.dto.js';
export * from './ip-pool-low-water.js';
