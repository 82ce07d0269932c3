export * from './dto/create-install.dto.js';
export * from './naming.js';
export * from './prepare.service.js';
export * from './secrets-cipher.js';
export * from './build/build-context.js';
export * from './build/build-steps.js';
export * from './installs.module.js';
