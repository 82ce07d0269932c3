export * from './site-dns.js';
