import { createHash } from 'node:crypto';
import { hostnameProblem } from '@app/common';

/**
 * The nginx configuration of one dispatcher, as a pure function of catalog
 * state: one file per install, one file per distinct set of PHP backends
 * (the upstream every install with that set passes PHP to), plus the main
 * include that takes the directories. An install with no rewrites of its
 * own and no certificate shares its server blocks: its file
 * (`hosts/<fs>.conf`) only maps each of its hostnames to its document root
 * (`$shop_root`, one map of every such install), and one server block per
 * listen addresses and web rules (`groups/`, rendered from the hostnames of
 * the installs it serves) holds the locations. nginx's reload costs per
 * server block and location (about 16 KB and 7 KB of module configs each,
 * built and freed on every reload): 2,000 installs load in a tenth of the
 * time and memory. Any other install has its own server blocks
 * (`shops/<fs>.conf`). Same input, byte-identical
 * output: installs, sites, IPs and backends are sorted, and nothing depends
 * on time or order of arrival. Every value is checked against what nginx
 * syntax allows unquoted before it is written; nothing is pasted in raw.
 */

export interface SiteInput {
  hostname: string;
  secureHostname: string | null;
  /** The site's IPs on this dispatcher. */
  ips: readonly string[];
  /** Certificate and key files on this dispatcher, when the site has TLS. */
  cert: { pem: string; key: string } | null;
}

/** A redirect rule of an install: exact path or path prefix to a local path or an http(s) URL. */
export interface RewriteInput {
  match: 'exact' | 'prefix';
  from: string;
  to: string;
  code: 301 | 302;
}

/**
 * How paths that are not files reach the front controller (the manifest's
 * `web.routing`): `uri` with REQUEST_URI untouched, `query` as
 * `?<param>=<path without its leading />` with the original query kept,
 * `pathInfo` as `/<front controller>/<path>` (PHP sees PATH_INFO). A miss
 * whose last segment matches a `notFound` glob answers nginx's 404 instead.
 */
export interface RoutingInput {
  pass: 'uri' | 'query' | 'pathInfo';
  param?: string;
  notFound?: readonly string[];
}

export interface InstallInput {
  id: number;
  fsName: string;
  /** Absolute document root on this dispatcher. */
  root: string;
  phpEntryPoints: readonly string[];
  /** Path prefixes under the document root that are denied. */
  deny: readonly string[];
  /** Globs denied anywhere: over the file name (no `/`), or over the path from the document root (with `/`). */
  denyPatterns?: readonly string[];
  /** Files under the document root denied exactly (the manifest's rendered templates: config files). */
  deniedFiles?: readonly string[];
  frontController: string | null;
  /** Without it (or with `pass: 'uri'` and no `notFound`): today's `try_files $uri $uri/ /<front>?$args`. */
  routing?: RoutingInput | null;
  /**
   * php-fpm of the install's handlers: address `host:port` or `unix:/path`,
   * with weights (0: out of rotation, `down`); `backup` ones get traffic
   * only when every other backend has failed (clouds only: the permanent
   * handlers stay behind the clouds).
   */
  backends: readonly { address: string; weight: number; backup?: boolean }[];
  rewrites: readonly RewriteInput[];
  sites: readonly SiteInput[];
  /** Why the install cannot be rendered at all (its code group's manifest does not parse): refused, named, quarantined. */
  refusal?: string;
}

export interface DispatcherInput {
  /** Directory holding `shops/` as nginx reads it (the main include takes every `shops/*.conf` under it). */
  confDir: string;
  /** Ports the dispatcher's nginx serves shops on (default 80 and 443; the embedded default uses high ports). */
  httpPort?: number;
  httpsPort?: number;
  /** Access log of every shop (its format carries the host, for site accounting). */
  accessLog: string;
  /**
   * Where the engine writes ACME HTTP-01 challenge files on this dispatcher:
   * every site's server blocks serve `/.well-known/acme-challenge/` from it,
   * ahead of any rewrite. Absent: no such location.
   */
  acmeChallengeDir?: string | null;
  installs: readonly InstallInput[];
}

export class RenderError extends Error {
  override name = 'RenderError';
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;
const IPV6 = /^[0-9a-f:]+$/i;
const ABSOLUTE_PATH = /^\/[A-Za-z0-9._@+\/-]*$/;
const RELATIVE_PATH = /^[A-Za-z0-9_@+-][A-Za-z0-9._@+\/-]*$/;
const URL_PATH = /^\/[A-Za-z0-9._~@+\/-]*$/;
const REDIRECT_URL = /^https?:\/\/[a-z0-9.-]+(:\d{1,5})?(\/[A-Za-z0-9._~@+\/-]*)?$/;
const FS_NAME = /^[a-z][a-z0-9]{0,31}$/;
/** The manifest's GLOB: letters, digits and . _ - with * and ?, segments joined by / (no .. segment). */
const GLOB = /^(?!.*(^|\/)\.\.(\/|$))[A-Za-z0-9._*?-]+(\/[A-Za-z0-9._*?-]+)*$/;
const ROUTE_PARAM = /^[A-Za-z_][A-Za-z0-9_]{0,31}$/;

export const MAIN_INCLUDE = 'shops.conf';
/** Default servers of every address the dispatcher listens on (loaded by nginx's own `current/*.conf` include, beside the main include). */
export const DEFAULTS_FILE = 'defaults.conf';
export const LOG_FORMAT = 'shop_host';
/** The file of an install with server blocks of its own (rewrites, certificates). */
export const installFile = (fsName: string) => `shops/${fsName}.conf`;
/** The file of an install that shares its server blocks: its hostnames' document root (map entries). */
export const hostsFile = (fsName: string) => `hosts/${fsName}.conf`;
/** Either file an install may have (one at a time): what to look for when asking whether a dispatcher serves it. */
export const installFiles = (fsName: string): [string, string] => [installFile(fsName), hostsFile(fsName)];
/** A server block shared by installs (same listen addresses, same web rules and upstream): named by a digest of what it holds but the hostnames. */
export const groupFile = (key: string) => `groups/g_${key}.conf`;
/** The variable holding the document root of a request's host (empty for a host no sharing install has). */
export const SHOP_ROOT_VARIABLE = 'shop_root';
/** The variable holding the upstream a request's host passes PHP to (`fastcgi_pass` takes it by name, among the upstreams). */
export const SHOP_UPSTREAM_VARIABLE = 'shop_upstream';
/**
 * The map of every sharing install's hostnames to `<upstream>:<document
 * root>` (`include`: its hosts files, a glob or one file), and the two
 * variables taken from it: the shared blocks need neither the root nor the
 * upstream, so installs with pools of their own share them too.
 */
export const shopRootMapDirective = (include: string | null) =>
  [
    `map $host $shop_target { default ""; ${include ? `include ${include}; ` : ''}}`,
    `map $shop_target $${SHOP_ROOT_VARIABLE} { default ""; "~^php_[0-9a-f]{16}:(/.*)$" $1; }`,
    `map $shop_target $${SHOP_UPSTREAM_VARIABLE} { default ""; "~^(php_[0-9a-f]{16}):" $1; }`,
  ].join('\n');
/** The path ACME CAs fetch HTTP-01 challenges from (RFC 8555, 8.3). */
export const ACME_CHALLENGE_PATH = '/.well-known/acme-challenge/';
export const upstreamFile = (name: string) => `upstreams/${name}.conf`;
export const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
/** The access log format every shop's server blocks use: the host first, for site accounting. */
export const LOG_FORMAT_DIRECTIVE = `log_format ${LOG_FORMAT} '$host $remote_addr [$time_local] "$request" $status $body_bytes_sent';`;
/** The request header the engine's probe sends (a random nonce); a PHP location echoes it back in the same header. */
export const PROBE_HEADER = 'X-Shop-Probe';
/**
 * The nonce a probe request carries, when it has the expected shape (else
 * empty: `add_header` then sends nothing). Only PHP locations answer with
 * it, so the probe tells PHP's answer from a static file or an nginx error page.
 */
/**
 * The variable holding the ACME HTTP-01 token a request asks for (RFC 8555,
 * 8.3: base64url, as the engine writes them); for any other path a name
 * longer than any Linux file system takes (NAME_MAX 255), so it is never a
 * file, whatever the challenge directory holds (nginx's `try_files` goes on
 * past such a name, to its 403).
 */
export const ACME_TOKEN_VARIABLE = 'shop_acme_token';
const NO_TOKEN = `no-token-${'x'.repeat(247)}`;
export const ACME_TOKEN_MAP_DIRECTIVE = `map $uri $${ACME_TOKEN_VARIABLE} { default ${NO_TOKEN}; "~^${ACME_CHALLENGE_PATH.replace(/\./g, '\\.')}([A-Za-z0-9_-]{1,128})$" $1; }`;
export const PROBE_MAP_DIRECTIVE = 'map $http_x_shop_probe $shop_probe { default ""; "~^[0-9a-f]{32}$" $http_x_shop_probe; }';

/**
 * What PHP receives with every request: nginx's standard `fastcgi_params`,
 * plus the script's file; HTTPS is `on` on TLS connections. Set once, in the
 * http block (the main include, and the test config), and inherited by every
 * PHP location of every shop: nginx inherits `fastcgi_param` into a level
 * that sets none of its own, and then shares the compiled set instead of
 * compiling one per server (2,000 installs: `nginx -t` 0.69 s -> 0.52 s,
 * 137 -> 112 MB). No shop file may set a `fastcgi_param` of its own.
 */
const FASTCGI_PARAMS: readonly [string, string][] = [
  ['SCRIPT_FILENAME', '$document_root$fastcgi_script_name'],
  ['QUERY_STRING', '$query_string'],
  ['REQUEST_METHOD', '$request_method'],
  ['CONTENT_TYPE', '$content_type'],
  ['CONTENT_LENGTH', '$content_length'],
  ['SCRIPT_NAME', '$fastcgi_script_name'],
  // Set only where a location splits the path (`fastcgi_split_path_info`: routing by PATH_INFO); empty, it is not sent.
  ['PATH_INFO', '$fastcgi_path_info if_not_empty'],
  ['REQUEST_URI', '$request_uri'],
  ['DOCUMENT_URI', '$document_uri'],
  ['DOCUMENT_ROOT', '$document_root'],
  ['SERVER_PROTOCOL', '$server_protocol'],
  ['REQUEST_SCHEME', '$scheme'],
  ['HTTPS', '$https if_not_empty'],
  ['GATEWAY_INTERFACE', 'CGI/1.1'],
  ['SERVER_SOFTWARE', 'nginx/$nginx_version'],
  ['REMOTE_ADDR', '$remote_addr'],
  ['REMOTE_PORT', '$remote_port'],
  ['SERVER_ADDR', '$server_addr'],
  ['SERVER_PORT', '$server_port'],
  // The request's host, as Apache gives it by default: `$server_name` is a block's first name, another install's in a shared block.
  ['SERVER_NAME', '$host'],
  ['HTTP_HOST', '$host'],
  ['REDIRECT_STATUS', '200'],
];
export const FASTCGI_PARAMS_DIRECTIVES: readonly string[] = FASTCGI_PARAMS.map(([name, value]) => `fastcgi_param ${name} ${value};`);

function check(value: string, pattern: RegExp, what: string, install?: InstallInput): string {
  if (typeof value !== 'string' || !pattern.test(value) || value.split('/').some((s) => s === '..' || s === '.')) {
    throw new RenderError(`${install ? `install ${install.id} (${install.fsName}): ` : ''}refused ${what} ${JSON.stringify(value)} for an nginx config`);
  }
  return value;
}

/** The one hostname rule the order's DTO applies too: what the door accepts, the renderer renders. */
function hostname(value: string, install: InstallInput): string {
  const problem = hostnameProblem(value);
  if (problem) throw new RenderError(`install ${install.id} (${install.fsName}): refused hostname ${JSON.stringify(value)} for an nginx config: ${problem}`);
  return value;
}

function port(value: number): number {
  if (!Number.isInteger(value) || value < 1 || value > 65535) throw new RenderError(`refused port ${String(value)}`);
  return value;
}

function ip(value: string, install: InstallInput): string {
  if (IPV4.test(value)) return value;
  if (IPV6.test(value) && value.includes(':')) return `[${value.toLowerCase()}]`;
  throw new RenderError(`install ${install.id} (${install.fsName}): refused IP ${JSON.stringify(value)}`);
}

function backend(address: string, install: InstallInput): string {
  if (address.startsWith('unix:')) return `unix:${check(address.slice(5), ABSOLUTE_PATH, 'socket path', install)}`;
  const m = /^(.*):(\d{1,5})$/.exec(address);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new RenderError(`install ${install.id} (${install.fsName}): refused backend ${JSON.stringify(address)}`);
  // An address, never a name: nginx would resolve a name when it loads the config, and one that fails would fail every install sharing the upstream.
  return `${ip(m[1]!.replace(/^\[(.*)\]$/, '$1'), install)}:${m[2]}`;
}

const byString = <T>(key: (t: T) => string) => (a: T, b: T) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0);

/** A shared server block but its hostnames: listen lines and the locations (`root $shop_root`, `fastcgi_pass $shop_upstream`). */
export interface GroupTemplate {
  file: string;
  listen: readonly string[];
  body: readonly string[];
}

/** What a dispatcher's render produced: the files, and the installs refused (named, with why). */
export interface RenderedDispatcher {
  /**
   * Relative path → content: `shops.conf`, `defaults.conf`, per install
   * rendered `shops/<fs>.conf` or `hosts/<fs>.conf`, `upstreams/<name>.conf`
   * per backend set, `groups/<name>.conf` per shared server block (with
   * the hostnames of the installs rendered here).
   */
  files: Map<string, string>;
  /** Install file → the upstream file it passes PHP to. */
  upstreamOf: Map<string, string>;
  /** Shared server blocks by file, without their hostnames (`renderGroup` adds them). */
  groups: Map<string, GroupTemplate>;
  /** What this render produced per install, for the next render of the same dispatcher (see `renderEach`). */
  memo: RenderMemo;
  refused: { id: number; fsName: string; error: string }[];
}

/**
 * The main include: the shops' log format, then every upstream file and
 * every install file of the directory `confDir` (globs: its text does not
 * change when installs come and go, so a one-install change writes one file).
 */
export function renderMainInclude(confDir: string): string {
  return [
    '# Written by the provisioning engine from the catalog: do not edit.',
    LOG_FORMAT_DIRECTIVE,
    PROBE_MAP_DIRECTIVE,
    ACME_TOKEN_MAP_DIRECTIVE,
    ...FASTCGI_PARAMS_DIRECTIVES,
    shopRootMapDirective(`${check(confDir, ABSOLUTE_PATH, 'config directory')}/hosts/*.conf`),
    `include ${confDir}/upstreams/*.conf;`,
    `include ${confDir}/shops/*.conf;`,
    `include ${confDir}/groups/*.conf;`,
    '',
  ].join('\n');
}

/** An install's input (with the access log) as JSON → its file, upstream and shared server blocks, as rendered then. */
export type RenderMemo = Map<string, { file: string; content: string; upstream: Upstream; groups: readonly GroupTemplate[] }>;

/** Whether an install shares its server blocks: no rewrites of its own (locations per install), no certificate (HTTPS blocks per certificate). */
export const sharesServerBlocks = (install: InstallInput) => install.rewrites.length === 0 && install.sites.every((s) => s.cert === null);

/**
 * Every install's file, each on its own: an install that cannot be rendered
 * is refused (named, with the reason) and the others are rendered anyway.
 * `memo`, the previous render's, gives back the file of an install whose
 * input is the same as then (the render is a pure function of it), so a
 * one-install change renders one install; the result carries the new memo.
 */
export function renderEach(input: DispatcherInput, memo?: RenderMemo): RenderedDispatcher {
  const files = new Map<string, string>();
  const upstreamOf = new Map<string, string>();
  const upstreams = new Map<string, Upstream>();
  const groups = new Map<string, GroupTemplate>();
  const nextMemo: RenderMemo = new Map();
  const refused: RenderedDispatcher['refused'] = [];
  const accessLog = check(input.accessLog, ABSOLUTE_PATH, 'access log path');
  const ports = { http: port(input.httpPort ?? 80), https: port(input.httpsPort ?? 443) };
  const acmeChallengeDir = input.acmeChallengeDir ? check(input.acmeChallengeDir, ABSOLUTE_PATH, 'ACME challenge directory') : null;
  const installs = [...input.installs].sort(byString((i) => `${i.fsName} ${String(i.id).padStart(12, '0')}`));
  const seen = new Set<string>();
  for (const install of installs) {
    try {
      check(install.fsName, FS_NAME, 'fs name', install);
      if (install.refusal) throw new RenderError(`install ${install.id} (${install.fsName}): ${install.refusal}`);
      if (seen.has(install.fsName)) throw new RenderError(`two installs named ${install.fsName}`);
      seen.add(install.fsName);
      const key = memo ? `${accessLog} ${ports.http} ${ports.https} ${acmeChallengeDir ?? ''}\n${JSON.stringify(install)}` : '';
      let rendered = memo?.get(key);
      if (!rendered) {
        const upstream = renderUpstream(install, upstreams);
        if (sharesServerBlocks(install)) {
          const shared = renderHosts(install, accessLog, upstream.name, ports, { acmeChallengeDir });
          rendered = { file: hostsFile(install.fsName), content: shared.content, upstream, groups: shared.groups };
        } else {
          rendered = { file: installFile(install.fsName), content: renderInstall(install, accessLog, upstream.name, ports, { acmeChallengeDir }), upstream, groups: [] };
        }
      }
      if (memo) nextMemo.set(key, rendered);
      const { upstream } = rendered;
      files.set(rendered.file, rendered.content);
      files.set(upstream.file, upstream.content);
      upstreamOf.set(rendered.file, upstream.file);
      for (const group of rendered.groups) groups.set(group.file, group);
    } catch (error) {
      if (!(error instanceof RenderError)) throw error;
      refused.push({ id: install.id, fsName: install.fsName, error: error.message });
    }
  }
  for (const [file, content] of renderGroups(groups, [...files].filter(([name]) => name.startsWith('hosts/')).map(([, content]) => content))) files.set(file, content);
  files.set(MAIN_INCLUDE, renderMainInclude(input.confDir));
  files.set(DEFAULTS_FILE, renderDefaults(input.installs, ports));
  return { files, upstreamOf, groups, memo: nextMemo, refused };
}

/** The hostnames a hosts file maps, each with the shared server block that serves it. */
export function hostsEntries(content: string): { hostname: string; group: string }[] {
  const entries: { hostname: string; group: string }[] = [];
  for (const line of content.split('\n')) {
    const m = /^([a-z0-9.-]+) \S+; # (groups\/g_[0-9a-f]{16}\.conf)$/.exec(line);
    if (m) entries.push({ hostname: m[1]!, group: m[2]! });
  }
  return entries;
}

/**
 * The shared server blocks of the given hosts files: each group any of them
 * names, with the hostnames they give it (a group whose template is not
 * known is left out: the caller keeps its live file).
 */
export function renderGroups(templates: ReadonlyMap<string, GroupTemplate>, hostsContents: Iterable<string>): Map<string, string> {
  const names = new Map<string, string[]>();
  for (const content of hostsContents) {
    for (const { hostname, group } of hostsEntries(content)) {
      const list = names.get(group) ?? [];
      list.push(hostname);
      names.set(group, list);
    }
  }
  const files = new Map<string, string>();
  for (const [file, list] of [...names].sort(byString(([f]) => f))) {
    const template = templates.get(file);
    if (template) files.set(file, renderGroup(template, list));
  }
  return files;
}

/** A shared server block's template, read back from its file (null when it is not one the engine wrote). */
export function groupTemplate(file: string, content: string): GroupTemplate | null {
  const lines = content.split('\n');
  const open = lines.indexOf('server {');
  const guard = lines.findIndex((l) => l.startsWith(`    if ($${SHOP_ROOT_VARIABLE} = "")`));
  const close = lines.lastIndexOf('}');
  if (open < 0 || guard < open || close < guard) return null;
  const listen = lines.slice(open + 1, guard).filter((l) => l.startsWith('    listen '));
  return listen.length > 0 ? { file, listen, body: lines.slice(guard + 1, close) } : null;
}

/**
 * One shared server block: its hostnames (eight to a line), then a host
 * the map does not know (a name whose install left since) gets 404, never
 * a document root of nothing, then the locations as an install's own block
 * has them, with `root $shop_root`.
 */
export function renderGroup(template: GroupTemplate, hostnames: readonly string[]): string {
  const sorted = [...new Set(hostnames)].sort();
  const lines = [
    '# A server block shared by the installs whose hostnames it lists (each one\'s document root: its hosts/ file), written by the provisioning engine from the catalog: do not edit.',
    'server {',
    ...template.listen,
  ];
  for (let i = 0; i < sorted.length; i += 8) lines.push(`    server_name ${sorted.slice(i, i + 8).join(' ')};`);
  lines.push(`    if ($${SHOP_ROOT_VARIABLE} = "") { return 404; }`, ...template.body, '}', '');
  return lines.join('\n');
}

/** A site's hostnames (its secure one after it, once) and its IPs on this dispatcher (sorted, bracketed when IPv6), each checked. */
function siteAddresses(site: SiteInput, install: InstallInput): { names: string[]; ips: string[] } {
  const names = [...new Set([site.hostname, ...(site.secureHostname ? [site.secureHostname] : [])])].map((n) => hostname(n, install));
  return { names, ips: [...new Set(site.ips)].sort().map((a) => ip(a, install)) };
}

/**
 * The file of an install that shares its server blocks: a map entry per
 * hostname (its upstream and document root), each naming the shared block that serves
 * it (one per set of listen addresses of its sites); and those blocks'
 * templates.
 */
export function renderHosts(
  install: InstallInput,
  accessLog: string,
  upstream: string,
  ports: { http: number; https: number } = { http: 80, https: 443 },
  options: { acmeChallengeDir?: string | null } = {},
): { content: string; groups: GroupTemplate[] } {
  const root = check(install.root, ABSOLUTE_PATH, 'document root', install);
  const challenge = options.acmeChallengeDir ? check(options.acmeChallengeDir, ABSOLUTE_PATH, 'ACME challenge directory', install) : null;
  const body = serverBody(install, `$${SHOP_ROOT_VARIABLE}`, `$${SHOP_UPSTREAM_VARIABLE}`, accessLog, challenge);
  const lines = [`# install ${install.id} (${install.fsName}): its hostnames' document root, for the server blocks it shares; written by the provisioning engine from the catalog: do not edit.`];
  const groups = new Map<string, GroupTemplate>();
  const mapped = new Set<string>();
  for (const site of [...install.sites].sort(byString((s) => s.hostname))) {
    if (site.cert) throw new RenderError(`install ${install.id} (${install.fsName}): a site with a certificate has server blocks of its own`);
    const { names, ips } = siteAddresses(site, install);
    if (ips.length === 0) continue;
    const listen = ips.map((a) => `    listen ${a}:${ports.http};`);
    const file = groupFile(sha256([...listen, ...body].join('\n')).slice(0, 16));
    groups.set(file, { file, listen, body });
    for (const name of names) {
      // A hostname twice in one install (two sites naming it) is served by the first site's block: nginx refuses a map key twice.
      if (mapped.has(name)) continue;
      mapped.add(name);
      lines.push(`${name} ${upstream}:${root}; # ${file}`);
    }
  }
  return { content: `${lines.join('\n')}\n`, groups: [...groups.values()] };
}

/**
 * A default server for every address and port an install listens on: a
 * request whose Host no install has (a domain pointed at our IP before its
 * order, a typo, a scanner; no Host, an empty one) gets 404 over HTTP and
 * a refused handshake over HTTPS, never whichever shop nginx loaded first
 * there. A Host nginx finds invalid (one starting with a dot) gets its own
 * 400. Changes only when the set of addresses does.
 */
export function renderDefaults(installs: readonly InstallInput[], ports: { http: number; https: number }): string {
  const http = new Set<string>();
  const https = new Set<string>();
  for (const install of installs) {
    for (const site of install.sites) {
      for (const value of site.ips) {
        // An address an install file would refuse is refused there (that install held back), not here.
        let address: string;
        try {
          address = ip(value, install);
        } catch {
          continue;
        }
        http.add(address);
        if (site.cert) https.add(address);
      }
    }
  }
  const sorted = (set: Set<string>) => [...set].sort();
  const lines = ['# Written by the provisioning engine from the catalog: do not edit. Unknown hosts get no shop.'];
  if (http.size > 0) lines.push('', 'server {', ...sorted(http).map((a) => `    listen ${a}:${port(ports.http)} default_server;`), '    server_name _;', '    access_log off;', '    return 404;', '}');
  if (https.size > 0) lines.push('', 'server {', ...sorted(https).map((a) => `    listen ${a}:${port(ports.https)} ssl default_server;`), '    server_name _;', '    access_log off;', '    ssl_reject_handshake on;', '}');
  return `${lines.join('\n')}\n`;
}

/** The files of one dispatcher: relative path → content. Throws on the first install it cannot render. */
export function renderDispatcher(input: DispatcherInput): Map<string, string> {
  const { files, refused } = renderEach(input);
  if (refused.length > 0) throw new RenderError(refused[0]!.error);
  return files;
}

export interface Upstream {
  name: string;
  file: string;
  content: string;
}

/**
 * The upstream of an install's PHP backends, shared with every install of
 * the dispatcher that has the same set (same addresses, same weights): its
 * name is a digest of the set, so a name always means the same servers.
 * nginx finds an upstream by a linear search over all of them, once per
 * `fastcgi_pass`: one upstream per install would make loading ten thousand
 * installs quadratic. Sharing also lets nginx's passive failover take a dead
 * handler out for every install at once. `cache` holds the sets seen so far.
 */
export function renderUpstream(install: InstallInput, cache: Map<string, Upstream> = new Map()): Upstream {
  const backends = [...install.backends].sort(byString((b) => b.address));
  if (backends.length === 0) throw new RenderError(`install ${install.id} (${install.fsName}): no PHP backend`);
  const servers = backends.map((b) => {
    if (!Number.isInteger(b.weight) || b.weight < 0 || b.weight > 1000) throw new RenderError(`install ${install.id}: refused weight ${b.weight}`);
    // Weight 0 takes a backend out of rotation; nginx wants `down` for that. A backup has no weight of its own.
    const mode = b.backup ? ' backup' : b.weight === 0 ? ' down' : ` weight=${b.weight}`;
    return `    server ${backend(b.address, install)}${mode} max_fails=3 fail_timeout=30s;`;
  });
  const key = servers.join('\n');
  let upstream = cache.get(key);
  if (!upstream) {
    const name = `php_${sha256(key).slice(0, 16)}`;
    const content = ['# PHP backends shared by every install with this set, written by the provisioning engine from the catalog: do not edit.', `upstream ${name} {`, key, '}', ''].join('\n');
    upstream = { name, file: upstreamFile(name), content };
    cache.set(key, upstream);
  }
  return upstream;
}

/** One install's file: a server block per site (HTTP, and HTTPS where it has a certificate), passing PHP to `upstream`. */
export function renderInstall(
  install: InstallInput,
  accessLog: string,
  upstream: string,
  ports: { http: number; https: number } = { http: 80, https: 443 },
  options: { acmeChallengeDir?: string | null } = {},
): string {
  const root = check(install.root, ABSOLUTE_PATH, 'document root', install);
  const lines = [`# install ${install.id} (${install.fsName}), written by the provisioning engine from the catalog: do not edit.`];
  const challenge = options.acmeChallengeDir ? check(options.acmeChallengeDir, ABSOLUTE_PATH, 'ACME challenge directory', install) : null;
  const body = serverBody(install, root, upstream, accessLog, challenge);
  for (const site of [...install.sites].sort(byString((s) => s.hostname))) {
    const { names, ips } = siteAddresses(site, install);
    if (ips.length === 0) continue;
    lines.push('', 'server {', ...ips.map((a) => `    listen ${a}:${ports.http};`), `    server_name ${names.join(' ')};`, ...body, '}');
    if (site.cert) {
      const pem = check(site.cert.pem, ABSOLUTE_PATH, 'certificate path', install);
      const key = check(site.cert.key, ABSOLUTE_PATH, 'key path', install);
      lines.push(
        '',
        'server {',
        ...ips.map((a) => `    listen ${a}:${ports.https} ssl;`),
        `    server_name ${names.join(' ')};`,
        `    ssl_certificate ${pem};`,
        `    ssl_certificate_key ${key};`,
        ...body,
        '}',
      );
    }
  }
  return `${lines.join('\n')}\n`;
}

/** A glob as a PCRE over the URI: `*` a run of a segment's characters, `?` one of them, `.` escaped; GLOB leaves nothing else special. */
const globPattern = (glob: string) => glob.replace(/[.*?]/g, (c) => (c === '.' ? '\\.' : c === '*' ? '[^/]*' : '[^/]'));

/**
 * One PCRE over the URI for a set of globs (null for none): globs without
 * `/` match the last segment (the file name), globs with `/` the whole path
 * from the document root. One regex, not one per glob: nginx tries a
 * server's regex locations in turn on every request.
 */
function globsRegex(globs: readonly string[], what: string, install: InstallInput): string | null {
  if (globs.length === 0) return null;
  const checked = [...new Set(globs)].sort().map((g) => {
    // GLOB itself, not `check`: the manifest accepts a `.` segment (it matches nothing nginx's normalized URI holds) and the renderer must not refuse what it accepts.
    if (typeof g !== 'string' || !GLOB.test(g)) throw new RenderError(`install ${install.id} (${install.fsName}): refused ${what} ${JSON.stringify(g)} for an nginx config`);
    return g;
  });
  const names = checked.filter((g) => !g.includes('/')).map(globPattern);
  const paths = checked.filter((g) => g.includes('/')).map(globPattern);
  return [...(names.length > 0 ? [`/(?:${names.join('|')})$`] : []), ...(paths.length > 0 ? [`^/(?:${paths.join('|')})$`] : [])].join('|');
}

/**
 * How a miss reaches the front controller: `try_files` at the server's level
 * (it serves the requests no location takes, and no location inherits it),
 * and the named location it falls back to when the path is routed. Not a
 * `location /`: every location costs nginx its module configs (about 7 KB)
 * and their parse on each reload, for every install (a tenth of a reload of
 * 2,000 installs).
 */
function routingLocations(install: InstallInput, front: string | null, entries: readonly string[]): string[] {
  const routing = install.routing ?? null;
  if (!routing) return [`    try_files $uri $uri/ ${front ? `${front}?$args` : '=404'};`];
  if (!front) throw new RenderError(`install ${install.id} (${install.fsName}): refused routing without a front controller`);
  // A rewrite to a path no PHP location takes would come back here, ten times, then answer 500.
  if (!entries.includes(front.slice(1))) throw new RenderError(`install ${install.id} (${install.fsName}): refused routing to ${front}, not a PHP entry point`);
  if (routing.pass !== 'uri' && routing.pass !== 'query' && routing.pass !== 'pathInfo') throw new RenderError(`install ${install.id} (${install.fsName}): refused routing pass ${JSON.stringify(routing.pass)}`);
  if (routing.pass === 'query' ? routing.param === undefined : routing.param !== undefined) throw new RenderError(`install ${install.id} (${install.fsName}): refused routing param ${JSON.stringify(routing.param)} with pass ${routing.pass}`);
  const notFound = globsRegex(routing.notFound ?? [], 'not-found glob', install);
  if (routing.pass === 'uri' && !notFound) return [`    try_files $uri $uri/ ${front}?$args;`];
  // `rewrite` keeps the request's query (after the new one, when it adds one); a capture going into the query is URL-encoded when the request's path was.
  const rewrite =
    routing.pass === 'query'
      ? `rewrite (?s)^/(.*)$ ${front}?${check(routing.param ?? '', ROUTE_PARAM, 'routing param', install)}=$1 last;`
      : routing.pass === 'pathInfo'
        ? `rewrite ^ ${front}$uri last;`
        : `rewrite ^ ${front} last;`;
  return [
    '    try_files $uri $uri/ @front;',
    '    location @front {',
    ...(notFound ? [`        if ($uri ~ "${notFound}") { return 404; }`] : []),
    `        ${rewrite}`,
    '    }',
  ];
}

function serverBody(install: InstallInput, root: string, upstream: string, accessLog: string, challenge: string | null): string[] {
  const front = install.frontController ? `/${check(install.frontController, RELATIVE_PATH, 'front controller', install)}` : null;
  const entries = (install.phpEntryPoints.length > 1 ? [...new Set(install.phpEntryPoints)].sort() : install.phpEntryPoints).map((e) => check(e, RELATIVE_PATH, 'PHP entry point', install));
  const pathInfo = install.routing?.pass === 'pathInfo';
  // Rendered files are denied, but an entry point rendered from a template runs (PHP never sends its source).
  const deniedFiles = install.deniedFiles?.length ? [...new Set(install.deniedFiles)].sort().map((f) => check(f, RELATIVE_PATH, 'denied file', install)).filter((f) => !entries.includes(f)) : [];
  const denyPatterns = globsRegex(install.denyPatterns ?? [], 'deny pattern', install);
  // A directory request (`/admin/`) serves the entry point of that directory.
  const nested = entries.filter((e) => e.includes('/'));
  const index = nested.length === 0 ? (front ? [front.slice(1)] : []) : [...new Set([...(front ? [front.slice(1)] : []), ...nested.map((e) => e.slice(e.lastIndexOf('/') + 1)).sort()])];
  const rewrites = [...install.rewrites].sort(byString((r) => `${r.match} ${r.from}`));
  // nginx refuses two locations with the same path: a rule must not take one the manifest's rules or another rule have.
  // `/` stays the server's own (its try_files): a prefix rule there would take every request.
  const taken = new Set(['^/', ...entries.map((e) => `=/${e}`), ...(pathInfo ? entries.map((e) => `^/${e}/`) : []), ...install.deny.map((d) => `^/${d}`), ...deniedFiles.map((f) => `=/${f}`)]);
  for (const r of rewrites) {
    if (typeof r.from === 'string' && `${r.from}/`.startsWith(ACME_CHALLENGE_PATH)) throw new RenderError(`install ${install.id} (${install.fsName}): refused rewrite ${r.match} ${JSON.stringify(r.from)}: ${ACME_CHALLENGE_PATH} is kept for ACME challenges`);
    const key = `${r.match === 'exact' ? '=' : '^'}${r.from}`;
    if (taken.has(key)) throw new RenderError(`install ${install.id} (${install.fsName}): refused rewrite ${r.match} ${JSON.stringify(r.from)}: another location has that path`);
    taken.add(key);
  }
  // A denied path is a prefix location only where a `^~` location (which no regex follows) could take a request under it, or it one
  // under such a location; elsewhere it joins the one regex of denials, which denies the same requests.
  const stoppers = [ACME_CHALLENGE_PATH, ...rewrites.filter((r) => r.match === 'prefix').map((r) => `${r.from}`), ...(pathInfo ? entries.map((e) => `/${e}/`) : [])];
  const denied = [...install.deny].sort().map((d) => check(d, RELATIVE_PATH, 'denied path', install));
  const shadowed = (d: string) => stoppers.some((s) => s.startsWith(`/${d}`) || `/${d}`.startsWith(s));
  const deniedByPrefix = denied.filter(shadowed);
  const deniedByRegex = denied.filter((d) => !shadowed(d));
  // ACME's HTTP-01 fetches (`/.well-known/acme-challenge/<token>`, which the `/\\.` denial matches) are served by the denial itself
  // from the challenge directory, every other denied request answering 403: one location fewer per server block than a
  // location of their own (each costs nginx its module configs and their parse on every reload of every install). Unless
  // a `^~` location here would take them first (a denied or redirected prefix of that path): then a `^~` location of
  // their own, the longest prefix, as before.
  const prefixes = [...stoppers.filter((p) => p !== ACME_CHALLENGE_PATH), ...deniedByPrefix.map((d) => `/${d}`)];
  const ownChallengeLocation = challenge !== null && prefixes.some((p) => ACME_CHALLENGE_PATH.startsWith(p));
  const denial =
    challenge && !ownChallengeLocation ? `root ${challenge}; default_type text/plain; try_files /$${ACME_TOKEN_VARIABLE} =403;` : 'deny all;';
  const php = (location: string, ...extra: string[]) => [
    `    location ${location} {`,
    ...extra,
    `        add_header ${PROBE_HEADER} $shop_probe always;`,
    `        fastcgi_pass ${upstream};`,
    '        fastcgi_next_upstream error timeout;',
    '    }',
  ];
  return [
    // First in the block, `^~` (no regex location is tried after it: not `\\.` denial, not `\\.php$`), before any rewrite: a CA's fetch always reaches the file.
    ...(ownChallengeLocation ? [`    location ^~ ${ACME_CHALLENGE_PATH} { alias ${challenge}/; default_type text/plain; }`] : []),
    `    root ${root};`,
    `    access_log ${accessLog} ${LOG_FORMAT};`,
    ...(index.length > 0 ? [`    index ${index.join(' ')};`] : []),
    ...rewrites.map((r) => {
      if (r.match !== 'exact' && r.match !== 'prefix') throw new RenderError(`install ${install.id}: refused rewrite match ${JSON.stringify(r.match)}`);
      if (r.code !== 301 && r.code !== 302) throw new RenderError(`install ${install.id}: refused redirect code ${String(r.code)}`);
      const from = check(r.from, URL_PATH, 'rewrite source', install);
      const to = r.to.startsWith('/') ? check(r.to, URL_PATH, 'rewrite target', install) : check(r.to, REDIRECT_URL, 'rewrite target', install);
      return `    location ${r.match === 'exact' ? '=' : '^~'} ${from} { return ${r.code} ${to}; }`;
    }),
    ...deniedByPrefix.map((d) => `    location ^~ /${d} { deny all; }`),
    ...deniedFiles.map((f) => `    location = /${f} { deny all; }`),
    // Every denial by pattern in one regex location (dot files, the denied paths no `^~` location can shadow, the manifest's patterns,
    // PHP files that are no entry point): each location costs nginx its memory and parse on every reload of every install. An entry
    // point (an exact location) is never reached through a regex.
    `    location ~ "${['/\\.', ...deniedByRegex.map((d) => `^/${d.replace(/[.+]/g, '\\$&')}`), ...(denyPatterns ? [denyPatterns] : []), '\\.php$'].join('|')}" { ${denial} }`,
    ...entries.flatMap((entry) => [
      ...php(`= /${entry}`),
      // The entry point with a path after it: PHP gets the script as SCRIPT_NAME and the rest as PATH_INFO.
      ...(pathInfo ? php(`^~ /${entry}/`, `        fastcgi_split_path_info (?s)^(/${entry.replace(/[.+]/g, '\\$&')})(/.*)$;`) : []),
    ]),
    ...routingLocations(install, front, entries),
  ];
}
