import { posix } from 'node:path';
import type { Server } from '@app/catalog';
import { renderInstall, type InstallInput } from '@app/webserver';
import { homeOn, type BuildContext } from './build-context.js';

/** Where every shop logs its requests (the format carries the host, for site accounting). */
export const SHOPS_ACCESS_LOG = '/var/log/nginx/shops-access.log';

/** The install as the webserver renderer sees it on one dispatcher. */
export function webInputFor(context: BuildContext, server: Server): InstallInput {
  const { install, sites, manifest, master, replicas } = context;
  return {
    id: install.id,
    fsName: install.fsName,
    root: posix.join(homeOn(server, install), manifest.web.documentRoot),
    phpEntryPoints: manifest.web.phpEntryPoints,
    deny: manifest.web.deny ?? [],
    frontController: manifest.web.frontController ?? null,
    backends: [...new Set([master, ...replicas].map((s) => s.privateIp ?? '127.0.0.1'))].map((ip) => ({ address: `${ip.includes(':') ? `[${ip}]` : ip}:9000`, weight: 1 })),
    rewrites: [],
    sites: sites.map((site) => ({
      hostname: site.hostname,
      secureHostname: site.secureHostname,
      ips: context.siteIps.filter((i) => i.siteId === site.id && i.serverId === server.id).map((i) => i.ip),
      cert: site.sslPemPath && site.sslKeyPath ? { pem: site.sslPemPath, key: site.sslKeyPath } : null,
    })),
  };
}

/**
 * The install's vhost on one dispatcher, until the webserver pipeline
 * (issue 6) applies them all: the pipeline's own renderer, for this install.
 */
export function renderInterimVhost(context: BuildContext, server: Server): string {
  return renderInstall(webInputFor(context, server), SHOPS_ACCESS_LOG);
}
