export * from './domain-error.js';
export * from './domain-exception.filter.js';
export * from './validation.js';
export * from './sql-literal.js';
export * from './hostname.js';
export * from './abort-scope.js';
export * from './secret-redaction.js';
export * from './unified-diff.js';
