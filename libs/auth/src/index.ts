export * from './api-tokens.service.js';
export * from './api-token.guard.js';
export * from './auth.decorators.js';
export * from './auth.module.js';
export * from './order-rate-limit.guard.js';
export * from './order-rate.repository.js';
export * from './token-codec.js';
