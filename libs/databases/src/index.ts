export * from './sql-split.js';
export * from './tenant-databases.service.js';
export * from './databases.module.js';
export * from './sqlite-tenant-databases.js';
export * from './sql-parallel.js';
