export * from './cert-checks.js';
export * from './certificates.errors.js';
