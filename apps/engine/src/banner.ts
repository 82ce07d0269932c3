import { relative } from 'node:path';
import type { EngineConfig } from '@app/config';
import type { RunningEngine } from './start-engine.js';

/** The example order's shop: a free install, served on the local server's shared IP. */
export const EXAMPLE_HOSTNAME = 'demo-shop.example.com';

/** A free order for the sample codebase, as the storefront sends it. */
export const EXAMPLE_ORDER = JSON.stringify({
  orderRef: 'demo-order-1',
  customerEmail: 'owner@example.com',
  license: 'free',
  sites: [{ hostname: EXAMPLE_HOSTNAME }],
});

/** What `npm start` prints once the engine is up: where to go and what to send. */
export function startupBanner(config: EngineConfig, engine: RunningEngine, cwd = process.cwd()): string {
  const rel = (p: string) => (relative(cwd, p).startsWith('..') ? p : `./${relative(cwd, p)}`);
  const lines = [
    '',
    `Shop provisioning engine is up (roles: ${config.roles.join(', ')})`,
    config.catalog.kind === 'sqlite'
      ? `  Catalog      SQLite at ${rel(config.catalog.path)} (embedded default)`
      : `  Catalog      ${config.catalog.kind} ${config.catalog.host}:${config.catalog.port}/${config.catalog.database}`,
  ];
  if (engine.url) {
    lines.push(
      `  API          ${engine.url}/v1`,
      `  OpenAPI      ${engine.url}/docs  (JSON: ${engine.url}/docs-json)`,
      `  Health       ${engine.url}/health`,
    );
  }
  if (config.embedded) {
    lines.push(
      `  Local server this machine, roots under ${rel(config.varDir)}/hosts/local`,
      `  Mail         ${config.smtpUrl ? 'sent through SMTP_URL' : `written as .eml files to ${rel(config.mailDir)}`}`,
      engine.shops?.serving
        ? `  Shops        served by a private nginx and php-fpm on port ${engine.shops.port} (logs in ${rel(config.varDir)}/hosts/local/web/logs)`
        : `  Shops        not served here: ${engine.shops?.reason ?? 'this instance has no worker role'}`,
    );
  }
  if (engine.adminToken && engine.url) {
    lines.push(
      `  Admin token  ${engine.adminToken}`,
      '               (new at every start; the previous one is revoked)',
      '',
      'Try it:',
      `  curl -s ${engine.url}/health`,
      `  curl -s -H 'Authorization: Bearer ${engine.adminToken}' ${engine.url}/v1/tokens`,
      `  curl -s -X POST -H 'Authorization: Bearer ${engine.adminToken}' -H 'Content-Type: application/json' \\`,
      `       -d '{"name":"storefront","scopes":["orders"]}' ${engine.url}/v1/tokens`,
      '',
      'An example order (the storefront\'s call; the admin token may place it too), then its status:',
      `  curl -s -X POST -H 'Authorization: Bearer ${engine.adminToken}' -H 'Content-Type: application/json' \\`,
      `       -d '${EXAMPLE_ORDER}' ${engine.url}/v1/installs`,
      `  curl -s -H 'Authorization: Bearer ${engine.adminToken}' ${engine.url}/v1/installs/1`,
      ...(engine.shops?.serving
        ? ['Once it is live, the shop itself (its front page reads its own database):', `  curl -s -H 'Host: ${EXAMPLE_HOSTNAME}' http://127.0.0.1:${engine.shops.port}/`]
        : []),
    );
  }
  return lines.join('\n') + '\n';
}
