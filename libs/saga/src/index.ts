export * from './saga.js';
export * from './saga.errors.js';
export * from './saga-journal.repository.js';
export * from './saga-runner.service.js';
export * from './saga.module.js';
