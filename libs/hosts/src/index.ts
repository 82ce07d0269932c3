export * from './host-executor.errors.js';
export * from './host-executor.port.js';
export * from './local-executor.adapter.js';
export * from './server-path.js';
export * from './shell-quote.js';
export * from './ssh-executor.adapter.js';
