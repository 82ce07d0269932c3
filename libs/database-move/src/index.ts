export * from './database-move.module.js';
export * from './database-moves.service.js';
export * from './database-move.checks.js';
export * from './database-move.job.js';
export * from './install-database-move.job.js';
export * from './dto/database-move.dto.js';
