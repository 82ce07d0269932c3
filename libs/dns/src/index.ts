export * from './site-dns.js';
export * from './dns.errors.js';
export * from './dns-records.js';
export * from './powerdns.client.js';
export * from './powerdns-site-dns.adapter.js';
export * from './unmanaged-site-dns.adapter.js';
export * from './site-records.repository.js';
export * from './dns.module.js';
