import { posix } from 'node:path';
import type { Server } from '@app/catalog';
import { homeOn, type BuildContext } from './build-context.js';

const HOSTNAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/;
const IP = /^[0-9a-fA-F:.]+$/;
const PATH = /^\/[A-Za-z0-9._\/@+-]*$/;

function check(value: string, pattern: RegExp, what: string): string {
  if (!pattern.test(value)) throw new Error(`refused ${what} ${JSON.stringify(value)} for an nginx config`);
  return value;
}

/** An IPv6 address goes in brackets in `listen`. */
const listenAddress = (ip: string) => (ip.includes(':') ? `[${ip}]` : ip);

/**
 * The install's vhost on one dispatcher, until the webserver pipeline
 * (issue 6) renders them all: per site a server block on its IPs of this
 * server, the manifest's web rules (document root, only the PHP entry
 * points execute, denied paths, front controller), PHP to the install's
 * servers' php-fpm with nginx's passive failover. Every value is checked
 * against what nginx syntax allows unquoted; nothing is pasted in raw.
 */
export function renderInterimVhost(context: BuildContext, server: Server): string {
  const { install, sites, manifest, master, replicas } = context;
  const home = check(homeOn(server, install), PATH, 'home');
  const root = check(posix.join(home, manifest.web.documentRoot), PATH, 'document root');
  const upstream = `shop_${install.fsName}`;
  const backends = [...new Set([master, ...replicas].map((s) => s.privateIp ?? '127.0.0.1'))];
  const front = manifest.web.frontController ? check(`/${manifest.web.frontController}`, PATH, 'front controller') : null;
  const lines = [
    `# shop ${install.fsName} (install ${install.id}), written by the provisioning engine: do not edit`,
    `upstream ${upstream} {`,
    ...backends.map((ip) => `    server ${listenAddress(check(ip, IP, 'IP'))}:9000 max_fails=3 fail_timeout=30s;`),
    '}',
  ];
  for (const site of sites) {
    const ips = context.siteIps.filter((i) => i.siteId === site.id && i.serverId === server.id).map((i) => check(i.ip, IP, 'IP'));
    if (ips.length === 0) continue;
    const names = [...new Set([site.hostname, ...(site.secureHostname ? [site.secureHostname] : [])])].map((n) => check(n, HOSTNAME, 'hostname'));
    lines.push(
      '',
      'server {',
      ...ips.map((ip) => `    listen ${listenAddress(ip)}:80;`),
      `    server_name ${names.join(' ')};`,
      `    root ${root};`,
      ...(front ? [`    index ${front.slice(1)};`] : []),
      ...(manifest.web.deny ?? []).map((d) => `    location ^~ /${check(d, /^[A-Za-z0-9._\/@+-]+$/, 'denied path')} { deny all; }`),
      '    location ~ /\\. { deny all; }',
      ...manifest.web.phpEntryPoints.map((entry) =>
        [
          `    location = /${check(entry, /^[A-Za-z0-9._\/@+-]+$/, 'PHP entry point')} {`,
          '        fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;',
          '        fastcgi_param QUERY_STRING $query_string;',
          '        fastcgi_param REQUEST_METHOD $request_method;',
          '        fastcgi_param HTTP_HOST $host;',
          `        fastcgi_pass ${upstream};`,
          '    }',
        ].join('\n'),
      ),
      '    location ~ \\.php$ { return 403; }',
      `    location / { try_files $uri $uri/ ${front ? `${front}?$args` : '=404'}; }`,
      '}',
    );
  }
  return `${lines.join('\n')}\n`;
}
