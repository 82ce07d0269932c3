export * from './metrics.module.js';
export * from './metrics.service.js';
export { isLoopback } from './metrics.controller.js';
