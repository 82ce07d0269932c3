export * from './dto/create-install.dto.js';
export * from './naming.js';
export * from './prepare.service.js';
export * from './secrets-cipher.js';
