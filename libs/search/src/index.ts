export * from './search-index-config.task.js';
export * from './search-indexes.service.js';
export * from './search-reader.js';
export * from './search.module.js';
export * from './sphinx-conf.js';
