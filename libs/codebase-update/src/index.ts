export * from './codebase-update.errors.js';
export * from './codebase-update.module.js';
export * from './dto/sql-snippet.dto.js';
export * from './sql-snippet.job.js';
export * from './sql-snippets.service.js';
