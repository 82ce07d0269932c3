import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseManifest, SAMPLE_MANIFEST } from '@app/codebases';
import { MAIN_INCLUDE, renderDispatcher, webRulesOf, type InstallInput, type RoutingInput } from '@app/webserver';
import { startNginx, stopNginx, testNginxConfig } from '../support/nginx.js';
import { startPhpFpm, stopPhpFpm, type PhpFpm } from '../support/php-fpm.js';
import type { NginxServer } from '../support/testbed.js';

/**
 * The manifest's web rules (deny patterns, rendered templates denied,
 * routing of misses to the front controller, several PHP entry points)
 * from a parsed manifest through the loader's mapping and the render to a
 * real nginx and php-fpm. The client connects from its own loopback address,
 * so REMOTE_ADDR is shown to be the client's.
 */
describe('web rules on a real nginx and php-fpm', () => {
  const TOKEN = 'LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0';
  const CLIENT = '127.0.101.99';
  const PHP = '127.0.101.200';
  const ip = (n: number) => `127.0.101.${n}`;
  let dir: string;
  let nginx: NginxServer;
  let fpm: PhpFpm;

  /** A GET from the client's address, with a Host header, on port 80 of the site's IP. */
  const get = (n: number, host: string, path: string, headers: Record<string, string> = {}) =>
    new Promise<{ status: number; body: string; location?: string; probe?: string }>((resolve, reject) => {
      const req = request({ host: ip(n), port: 80, localAddress: CLIENT, path, headers: { Host: host, ...headers }, timeout: 5_000, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, location: res.headers.location, probe: res.headers['x-shop-probe'] as string | undefined }));
      });
      req.once('timeout', () => req.destroy(new Error('timed out')));
      req.once('error', reject);
      req.end();
    });
  /** What PHP saw (the scripts answer JSON). */
  const php = async (n: number, host: string, path: string) => {
    const answer = await get(n, host, path);
    expect({ path, status: answer.status }).toEqual({ path, status: 200 });
    return JSON.parse(answer.body) as { script: string; get: Record<string, string>; pathInfo: string | null; requestUri: string; scriptName: string; remoteAddr: string };
  };

  const manifest = (routing: RoutingInput | undefined, frontController: string | undefined = 'index.php') =>
    parseManifest({
      ...JSON.parse(JSON.stringify(SAMPLE_MANIFEST)),
      templates: [
        { source: 'tpl/config.php.tpl', target: 'html/config.php', language: 'php' },
        { source: 'tpl/settings.ini.tpl', target: 'html/settings.ini', language: 'ini' },
        { source: 'tpl/outside.php.tpl', target: 'heavymetal/config.php', language: 'php' },
      ],
      web: {
        documentRoot: 'html',
        phpEntryPoints: ['index.php', 'admin/index.php'],
        deny: ['private'],
        denyPatterns: ['*.tpl', 'system/*', '.*'],
        ...(frontController ? { frontController } : {}),
        ...(routing ? { routing } : {}),
      },
    });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'web-rules-'));
    chmodSync(dir, 0o755);
    const html = join(dir, 'home/html');
    const files: Record<string, string> = {
      'index.php': script('front'),
      'admin/index.php': script('admin'),
      'other.php': "<?php echo 'other';\n",
      'style.tpl': 'a template with {{ secrets }}\n',
      'theme/deep/page.tpl': 'another template\n',
      'config.php': "<?php $db_password = 'rendered';\n",
      'settings.ini': 'db_password=rendered\n',
      '.env': 'SECRET=1\n',
      'system/error.log': 'a log\n',
      'system/tool.php': "<?php echo 'tool';\n",
      'private/notes.txt': 'private\n',
      'img/logo.png': 'a png\n',
      'hello.txt': 'hello\n',
    };
    for (const [path, content] of Object.entries(files)) {
      mkdirSync(dirname(join(html, path)), { recursive: true, mode: 0o755 });
      writeFileSync(join(html, path), content, { mode: 0o644 });
    }
    chmodSync(join(dir, 'home'), 0o755);
    fpm = await startPhpFpm(join(dir, 'fpm'), PHP, 9000);
    const install = async (id: number, fsName: string, n: number, routing: RoutingInput | undefined, front?: string): Promise<InstallInput> => ({
      id, fsName, root: html, ...webRulesOf(await manifest(routing, front)),
      backends: [{ address: `${PHP}:9000`, weight: 1 }], rewrites: [],
      sites: [{ hostname: `${fsName}.example.test`, secureHostname: null, ips: [ip(n)], cert: null }],
    });
    // ACME's HTTP-01 tokens, and files no request may reach through the challenge directory (only a token's path serves from it).
    const challenges = join(dir, 'acme-challenge');
    mkdirSync(challenges, { mode: 0o755 });
    for (const [name, content] of Object.entries({ [TOKEN]: 'key-authorization\n', '.env': 'challenge dir dot file\n', '.none': 'none\n', 'other.php': 'php in challenges\n', 'a.b': 'dotted\n' })) {
      writeFileSync(join(challenges, name), content, { mode: 0o644 });
    }
    const confDir = join(dir, 'conf');
    const rendered = renderDispatcher({
      confDir,
      acmeChallengeDir: challenges,
      accessLog: join(dir, 'access.log'),
      installs: [
        await install(1, 'query', 1, { pass: 'query', param: '_route_', notFound: ['*.png'] }),
        await install(2, 'pathinfo', 2, { pass: 'pathInfo' }),
        await install(3, 'uri', 3, { pass: 'uri', notFound: ['*.png', 'x?.css'] }),
        await install(4, 'nofront', 4, undefined, ''),
      ],
    });
    for (const [path, content] of rendered) {
      mkdirSync(dirname(join(confDir, path)), { recursive: true });
      writeFileSync(join(confDir, path), content);
    }
    // startNginx runs `nginx -t` on the config before it starts.
    nginx = await startNginx(join(dir, 'nginx'), { include: [join(confDir, MAIN_INCLUDE)] });
  });
  afterAll(async () => {
    if (nginx) await stopNginx(nginx);
    if (fpm) await stopPhpFpm(fpm);
    rmSync(dir, { recursive: true, force: true });
  });

  it('passes nginx -t', async () => {
    await expect(testNginxConfig(nginx)).resolves.toBeUndefined();
  });

  it('query: a routed path reaches the front controller as ?_route_=<path>, the query kept, REQUEST_URI untouched, REMOTE_ADDR the client', async () => {
    expect(await php(1, 'query.example.test', '/some-category/shoes%20red?x=1&y=2')).toMatchObject({
      script: 'front', get: { _route_: 'some-category/shoes red', x: '1', y: '2' }, requestUri: '/some-category/shoes%20red?x=1&y=2', scriptName: '/index.php', pathInfo: null, remoteAddr: CLIENT,
    });
    expect((await php(1, 'query.example.test', '/some-category')).get).toEqual({ _route_: 'some-category' });
    // Characters the query would read as its own are encoded in the parameter.
    expect((await php(1, 'query.example.test', '/a%26b%3Dc%2Bd?x=1')).get).toEqual({ _route_: 'a&b=c+d', x: '1' });
    expect((await php(1, 'query.example.test', '/a%0Ab')).get).toEqual({ _route_: 'a\nb' });
    // The front page and the script itself: no route.
    expect((await php(1, 'query.example.test', '/')).get).toEqual({});
    expect((await php(1, 'query.example.test', '/index.php?route=common/home')).get).toEqual({ route: 'common/home' });
    // A missing file not in notFound is routed too.
    expect((await php(1, 'query.example.test', '/img/x.gif')).get).toEqual({ _route_: 'img/x.gif' });
  });

  it('notFound: a missing file matching a glob answers nginx 404, not the front controller; an existing one is served', async () => {
    const miss = await get(1, 'query.example.test', '/img/x.png?x=1');
    expect(miss.status).toBe(404);
    expect(miss.body).toContain('nginx');
    expect(await get(1, 'query.example.test', '/img/logo.png')).toMatchObject({ status: 200, body: 'a png\n' });
    expect(await get(3, 'uri.example.test', '/deep/a/b.png')).toMatchObject({ status: 404 });
    expect(await get(3, 'uri.example.test', '/x1.css')).toMatchObject({ status: 404 });
    expect((await php(3, 'uri.example.test', '/xyz.css')).requestUri).toBe('/xyz.css');
  });

  it('uri: REQUEST_URI untouched, the query as it came', async () => {
    expect(await php(3, 'uri.example.test', '/some/page%20x?x=1&y=2')).toMatchObject({ script: 'front', get: { x: '1', y: '2' }, requestUri: '/some/page%20x?x=1&y=2', pathInfo: null });
  });

  it('pathInfo: /index.php/<path> with PATH_INFO and SCRIPT_NAME, for routed paths and direct ones; everything routed without notFound', async () => {
    expect(await php(2, 'pathinfo.example.test', '/some-category/shoes%20red?x=1&y=2')).toMatchObject({
      script: 'front', pathInfo: '/some-category/shoes red', scriptName: '/index.php', get: { x: '1', y: '2' }, requestUri: '/some-category/shoes%20red?x=1&y=2', remoteAddr: CLIENT,
    });
    expect(await php(2, 'pathinfo.example.test', '/index.php/foo/bar?x=1')).toMatchObject({ script: 'front', pathInfo: '/foo/bar', scriptName: '/index.php', get: { x: '1' } });
    expect(await php(2, 'pathinfo.example.test', '/admin/index.php/users')).toMatchObject({ script: 'admin', pathInfo: '/users', scriptName: '/admin/index.php' });
    expect(await php(2, 'pathinfo.example.test', '/index.php')).toMatchObject({ script: 'front', pathInfo: null });
    // A newline (encoded) in the path is part of PATH_INFO, not a broken split.
    expect(await php(2, 'pathinfo.example.test', '/a%0Ab')).toMatchObject({ script: 'front', pathInfo: '/a\nb' });
    expect(await php(2, 'pathinfo.example.test', '/img/x.png')).toMatchObject({ script: 'front', pathInfo: '/img/x.png' });
    // A PHP file that is not an entry point never runs, with or without a path after it.
    expect((await get(2, 'pathinfo.example.test', '/other.php')).status).toBe(403);
    expect((await php(2, 'pathinfo.example.test', '/other.php/x')).pathInfo).toBe('/other.php/x');
  });

  it.each([1, 2, 3])('denies patterns, rendered templates, dot-files and non-entry PHP with 403 (install %i)', async (n) => {
    const host = ['query', 'pathinfo', 'uri'][n - 1]!;
    const statuses: Record<string, number> = {};
    for (const path of ['/style.tpl', '/theme/deep/page.tpl', '/missing.tpl', '/settings.ini', '/config.php', '/.env', '/system/error.log', '/system/tool.php', '/other.php', '/private/notes.txt']) {
      statuses[path] = (await get(n, `${host}.example.test`, path)).status;
    }
    expect(statuses).toEqual({
      '/style.tpl': 403, '/theme/deep/page.tpl': 403, '/missing.tpl': 403, '/settings.ini': 403, '/config.php': 403, '/.env': 403, '/system/error.log': 403, '/system/tool.php': 403, '/other.php': 403, '/private/notes.txt': 403,
    });
    expect(await get(n, `${host}.example.test`, '/hello.txt')).toMatchObject({ status: 200, body: 'hello\n' });
  });

  it('serves the admin entry point at /admin/ and /admin/index.php, and sends /admin to /admin/', async () => {
    const nonce = '0123456789abcdef0123456789abcdef';
    for (const path of ['/admin/', '/admin/index.php?x=1', '/admin/?x=1']) {
      const answer = await get(1, 'query.example.test', path, { 'X-Shop-Probe': nonce });
      expect({ path, status: answer.status, probe: answer.probe }).toEqual({ path, status: 200, probe: nonce });
      expect(JSON.parse(answer.body)).toMatchObject({ script: 'admin', scriptName: '/admin/index.php', remoteAddr: CLIENT });
    }
    expect(JSON.parse((await get(1, 'query.example.test', '/admin/?x=1')).body).get).toEqual({ x: '1' });
    const bare = await get(1, 'query.example.test', '/admin');
    expect({ status: bare.status, location: bare.location }).toEqual({ status: 301, location: 'http://query.example.test/admin/' });
  });

  it.each([1, 2, 3, 4])('serves ACME tokens from the challenge directory as text, and nothing else from it (install %i)', async (n) => {
    const host = `${['query', 'pathinfo', 'uri', 'nofront'][n - 1]!}.example.test`;
    const token = await new Promise<{ status: number; type?: string; body: string }>((resolve, reject) => {
      request({ host: ip(n), port: 80, localAddress: CLIENT, path: `/.well-known/acme-challenge/${TOKEN}`, headers: { Host: host }, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], body }));
      }).once('error', reject).end();
    });
    expect(token).toEqual({ status: 200, type: 'text/plain', body: 'key-authorization\n' });
    const statuses: Record<string, number> = {};
    for (const path of ['/.well-known/acme-challenge/missing-token', '/.well-known/acme-challenge/', '/.well-known/acme-challenge/.env', '/.well-known/acme-challenge/a.b', '/.well-known/acme-challenge/other.php', '/.well-known/other', `/.well-known/acme-challenge/${TOKEN}/x`, '/.env', '/.none', '/other.php', '/a.b/.env', `/x/.well-known/acme-challenge/${TOKEN}`]) {
      statuses[path] = (await get(n, host, path)).status;
    }
    expect(statuses).toEqual({
      '/.well-known/acme-challenge/missing-token': 403, '/.well-known/acme-challenge/': 403, '/.well-known/acme-challenge/.env': 403, '/.well-known/acme-challenge/a.b': 403,
      '/.well-known/acme-challenge/other.php': 403, '/.well-known/other': 403, [`/.well-known/acme-challenge/${TOKEN}/x`]: 403, '/.env': 403, '/.none': 403, '/other.php': 403, '/a.b/.env': 403,
      [`/x/.well-known/acme-challenge/${TOKEN}`]: 403,
    });
  });

  it('without a front controller a miss is 404, and the entry points still answer', async () => {
    expect((await get(4, 'nofront.example.test', '/some-category')).status).toBe(404);
    expect((await php(4, 'nofront.example.test', '/admin/')).script).toBe('admin');
    expect((await php(4, 'nofront.example.test', '/index.php')).script).toBe('front');
  });
});

/** A PHP entry point that answers what it was given, as JSON. */
function script(name: string): string {
  return `<?php
header('Content-Type: application/json');
echo json_encode(['script' => '${name}', 'get' => (object) $_GET, 'pathInfo' => $_SERVER['PATH_INFO'] ?? null, 'requestUri' => $_SERVER['REQUEST_URI'],
  'scriptName' => $_SERVER['SCRIPT_NAME'], 'remoteAddr' => $_SERVER['REMOTE_ADDR']]);
`;
}
