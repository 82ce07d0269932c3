export * from './engine-config.js';
export * from './config.errors.js';
export * from './load-config.js';
export * from './secrets-keyring.js';
export * from './config.module.js';
