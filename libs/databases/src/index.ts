export * from './sql-split.js';
