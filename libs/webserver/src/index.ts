export * from './dispatcher-files.js';
export * from './dispatcher-input.loader.js';
export * from './nginx-pipeline.service.js';
export * from './nginx-rebuild.job.js';
export * from './nginx-rebuilds.service.js';
export * from './nginx-reconcile.task.js';
export * from './render.js';
export * from './webserver.module.js';
