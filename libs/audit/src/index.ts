export * from './dto/list-audit.query.js';
export * from './audit-log.repository.js';
export * from './audit-log.service.js';
export * from './audit.module.js';
