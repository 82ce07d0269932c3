import { SAMPLE_MANIFEST, type CodebaseManifest } from '@app/codebases';
import { webRulesOf } from './dispatcher-input.loader.js';
import { hostsEntries, RenderError, renderDispatcher, renderEach, renderInstall, renderMainInclude, sharesServerBlocks, type DispatcherInput, type InstallInput } from './render.js';

const shop = (overrides: Partial<InstallInput> = {}): InstallInput => ({
  id: 7,
  fsName: 'bioexcouk',
  root: '/usr/home/bioexcouk/html',
  phpEntryPoints: ['index.php', 'admin/index.php'],
  deny: ['mas_assets/theme/private'],
  frontController: 'index.php',
  backends: [
    { address: '10.0.0.12:9000', weight: 1 },
    { address: '10.0.0.11:9000', weight: 3 },
    { address: '10.0.0.30:9000', weight: 0 },
  ],
  rewrites: [
    { match: 'prefix', from: '/old-shop/', to: 'https://www.bio-ex.co.uk/', code: 301 },
    { match: 'exact', from: '/sale', to: '/category/sale', code: 302 },
  ],
  sites: [
    { hostname: 'www.bio-ex.co.uk', secureHostname: 'secure.bio-ex.co.uk', ips: ['208.43.48.3', '208.43.48.2'], cert: { pem: '/etc/shops/certs/bioex.pem', key: '/etc/shops/certs/bioex.key' } },
    { hostname: 'bio-ex.co.uk', secureHostname: null, ips: ['208.43.48.2'], cert: null },
  ],
  ...overrides,
});

const dispatcher = (installs: InstallInput[]): DispatcherInput => ({ confDir: '/etc/nginx/shops/current', accessLog: '/var/log/nginx/shops.access.log', acmeChallengeDir: '/etc/shops/certs/acme-challenge', installs });

describe('the ACME challenge location', () => {
  const CHALLENGE = '    location ^~ /.well-known/acme-challenge/ { alias /etc/shops/certs/acme-challenge/; default_type text/plain; }';
  const SERVING = '{ root /etc/shops/certs/acme-challenge; default_type text/plain; try_files /$shop_acme_token =403; }';

  it('is the denial of every server block (HTTP and HTTPS): it serves the tokens from the challenge directory, 403 otherwise; without a directory, a plain denial', () => {
    const withDir = renderDispatcher(dispatcher([shop()])).get('shops/bioexcouk.conf')!;
    const without = renderDispatcher({ ...dispatcher([shop()]), acmeChallengeDir: null }).get('shops/bioexcouk.conf')!;
    const blocks = withDir.split('server {').slice(1);
    expect(blocks).toHaveLength(3);
    for (const block of blocks) {
      expect(block).not.toContain('acme-challenge/ {');
      expect(block.split('\n').filter((l) => l.startsWith('    location ~ ') && l.endsWith(SERVING))).toHaveLength(1);
    }
    expect(withDir.replaceAll(SERVING, '{ deny all; }')).toBe(without);
    expect(renderMainInclude('/etc/nginx/shops/current')).toMatch(/^map \$uri \$shop_acme_token \{ default no-token-x{247}; "~\^\/\\\.well-known\/acme-challenge\/\(\[A-Za-z0-9_-\]\{1,128\}\)\$" \$1; \}$/m);
  });

  it('has a location of its own, first, where a ^~ location would take the challenge path (a redirected prefix of it)', () => {
    for (const extra of [{ rewrites: [{ match: 'prefix' as const, from: '/.well-known', to: '/', code: 301 as const }] }]) {
      const file = renderDispatcher(dispatcher([shop(extra)])).get('shops/bioexcouk.conf')!;
      for (const block of file.split('server {').slice(1)) {
        const lines = block.split('\n');
        expect(lines.indexOf(CHALLENGE)).toBeGreaterThan(0);
        expect(lines.indexOf(CHALLENGE)).toBeLessThan(lines.findIndex((l) => l.startsWith('    root ')));
        expect(block).toContain('{ deny all; }');
        expect(block).not.toContain(SERVING);
      }
    }
  });

  it('refuses a rewrite of the challenge path, and a challenge directory nginx could not take', () => {
    for (const from of ['/.well-known/acme-challenge/', '/.well-known/acme-challenge', '/.well-known/acme-challenge/x']) {
      expect(() => renderDispatcher(dispatcher([shop({ rewrites: [{ match: 'prefix', from, to: '/', code: 301 }] })]))).toThrow(/kept for ACME challenges/);
    }
    expect(() => renderDispatcher({ ...dispatcher([shop()]), acmeChallengeDir: '/etc/x; evil' })).toThrow(RenderError);
  });
});

describe('renderDispatcher', () => {
  it('renders one file per install and the main include (snapshot)', () => {
    const files = renderDispatcher(dispatcher([shop(), shop({ id: 9, fsName: 'another', rewrites: [], sites: [{ hostname: 'another.example.com', secureHostname: null, ips: ['208.43.48.9'], cert: null }] })]));
    const upstreams = [...files.keys()].filter((n) => n.startsWith('upstreams/'));
    expect(upstreams).toEqual([expect.stringMatching(/^upstreams\/php_[0-9a-f]{16}\.conf$/)]);
    const groups = [...files.keys()].filter((n) => n.startsWith('groups/'));
    expect(groups).toEqual([expect.stringMatching(/^groups\/g_[0-9a-f]{16}\.conf$/)]);
    // bioexcouk has rewrites and a certificate: server blocks of its own; another shares one.
    expect([...files.keys()].sort()).toEqual(['defaults.conf', groups[0], 'hosts/another.conf', 'shops.conf', 'shops/bioexcouk.conf', upstreams[0]]);
    expect(files.get('shops.conf')).toMatchSnapshot();
    expect(files.get('shops/bioexcouk.conf')).toMatchSnapshot();
    expect(files.get(upstreams[0]!)).toMatchSnapshot();
    expect(files.get('hosts/another.conf')).toMatchSnapshot();
    expect(files.get(groups[0]!)).toMatchSnapshot();
  });

  it('serves installs without rewrites or certificates from one server block per listen addresses and web rules', () => {
    const simple = (id: number, fsName: string, ips: string[], overrides: Partial<InstallInput> = {}) =>
      shop({ id, fsName, root: `/usr/home/${fsName}/html`, rewrites: [], sites: [{ hostname: `${fsName}.example.com`, secureHostname: `secure.${fsName}.example.com`, ips, cert: null }], ...overrides });
    const installs = [simple(1, 'one', ['10.1.0.1']), simple(2, 'two', ['10.1.0.1']), simple(3, 'three', ['10.1.0.2']), simple(4, 'four', ['10.1.0.1'], { deny: ['secret'] })];
    expect(installs.every(sharesServerBlocks)).toBe(true);
    expect(sharesServerBlocks(shop())).toBe(false);
    expect(sharesServerBlocks(shop({ sites: [shop().sites[1]!] }))).toBe(false);
    expect(sharesServerBlocks(shop({ rewrites: [] }))).toBe(false);
    // five has PHP backends of its own (a pool of its own, say): it shares one's block all the same.
    installs.push(simple(5, 'five', ['10.1.0.1'], { backends: [{ address: '10.0.0.40:20005', weight: 1 }] }));
    const { files, upstreamOf } = renderEach(dispatcher(installs));
    const upstream = (fsName: string) => upstreamOf.get(`hosts/${fsName}.conf`)!.slice('upstreams/'.length, -'.conf'.length);
    expect(upstream('five')).not.toBe(upstream('one'));
    expect(files.get('hosts/one.conf')).toBe(
      [
        "# install 1 (one): its hostnames' document root, for the server blocks it shares; written by the provisioning engine from the catalog: do not edit.",
        `one.example.com ${upstream('one')}:/usr/home/one/html; # ${hostsEntries(files.get('hosts/one.conf')!)[0]!.group}`,
        `secure.one.example.com ${upstream('one')}:/usr/home/one/html; # ${hostsEntries(files.get('hosts/one.conf')!)[0]!.group}`,
        '',
      ].join('\n'),
    );
    const groupOf = (fsName: string) => hostsEntries(files.get(`hosts/${fsName}.conf`)!).map((e) => e.group);
    expect(new Set(groupOf('one')).size).toBe(1);
    expect(groupOf('two')).toEqual(groupOf('one'));
    expect(groupOf('five')).toEqual(groupOf('one'));
    // Another address, other web rules: blocks of their own.
    expect(groupOf('three')[0]).not.toBe(groupOf('one')[0]);
    expect(groupOf('four')[0]).not.toBe(groupOf('one')[0]);
    const shared = files.get(groupOf('one')[0]!)!;
    expect(shared).toContain(
      '    listen 10.1.0.1:80;\n    server_name five.example.com one.example.com secure.five.example.com secure.one.example.com secure.two.example.com two.example.com;\n',
    );
    expect(shared).toContain('    if ($shop_root = "") { return 404; }\n    root $shop_root;\n');
    expect(shared).toContain('        fastcgi_pass $shop_upstream;\n');
    expect(shared).not.toContain('php_');
    expect(shared).not.toContain('three');
    expect(shared).not.toContain('/usr/home/');
    expect([...files.keys()].filter((n) => n.startsWith('groups/'))).toHaveLength(3);
    expect([...files.keys()].some((n) => n.startsWith('shops/'))).toBe(false);
  });

  it('gives installs with the same PHP backends one upstream, and each other set its own', () => {
    const { files, upstreamOf } = renderEach(
      dispatcher([
        shop(),
        shop({ id: 9, fsName: 'same', backends: [...shop().backends].reverse() }),
        shop({ id: 10, fsName: 'weighted', backends: [{ address: '10.0.0.12:9000', weight: 2 }, { address: '10.0.0.11:9000', weight: 3 }] }),
      ]),
    );
    expect(upstreamOf.get('shops/same.conf')).toBe(upstreamOf.get('shops/bioexcouk.conf'));
    expect(upstreamOf.get('shops/weighted.conf')).not.toBe(upstreamOf.get('shops/bioexcouk.conf'));
    expect([...files.keys()].filter((n) => n.startsWith('upstreams/'))).toHaveLength(2);
    const name = upstreamOf.get('shops/same.conf')!.slice('upstreams/'.length, -'.conf'.length);
    expect(files.get('shops/same.conf')).toContain(`fastcgi_pass ${name};`);
    expect(files.get(`upstreams/${name}.conf`)).toContain(`upstream ${name} {`);
  });

  it('passes PHP to the pool socket of the install, keeps backups behind the clouds and takes weight 0 out', () => {
    const { files, upstreamOf } = renderEach(
      dispatcher([
        shop({
          backends: [
            { address: 'unix:/etc/php/shop-pools/run/bioexcouk.sock', weight: 0, backup: true },
            { address: '10.0.0.40:20001', weight: 3 },
            { address: '10.0.0.41:20007', weight: 0 },
          ],
        }),
      ]),
    );
    const upstream = files.get(upstreamOf.get('shops/bioexcouk.conf')!)!;
    expect(upstream).toContain('    server unix:/etc/php/shop-pools/run/bioexcouk.sock backup max_fails=3 fail_timeout=30s;');
    expect(upstream).toContain('    server 10.0.0.40:20001 weight=3 max_fails=3 fail_timeout=30s;');
    expect(upstream).toContain('    server 10.0.0.41:20007 down max_fails=3 fail_timeout=30s;');
    expect(() => renderDispatcher(dispatcher([shop({ backends: [{ address: 'unix:relative.sock', weight: 1 }] })]))).toThrow(/refused socket path/);
  });

  it('is byte-identical for the same state in any order', () => {
    const a = shop();
    const b = shop({ id: 9, fsName: 'another' });
    const shuffled = { ...a, sites: [...a.sites].reverse(), backends: [...a.backends].reverse(), rewrites: [...a.rewrites].reverse(), phpEntryPoints: [...a.phpEntryPoints].reverse() };
    expect(renderDispatcher(dispatcher([a, b]))).toEqual(renderDispatcher(dispatcher([b, shuffled])));
  });

  it.each([
    ['a hostname with a directive in it', { sites: [{ hostname: 'x.com; include /etc/passwd', secureHostname: null, ips: ['1.2.3.4'], cert: null }] }, /refused hostname/],
    ['a hostname with a newline', { sites: [{ hostname: 'x.com\nserver_name evil', secureHostname: null, ips: ['1.2.3.4'], cert: null }] }, /refused hostname/],
    ['an IP that is not one', { sites: [{ hostname: 'x.com', secureHostname: null, ips: ['1.2.3.4:80 default_server'], cert: null }] }, /refused IP/],
    ['a certificate path with a brace', { sites: [{ hostname: 'x.com', secureHostname: null, ips: ['1.2.3.4'], cert: { pem: '/etc/x.pem;}', key: '/etc/x.key' } }] }, /refused certificate path/],
    ['a document root with ..', { root: '/usr/home/../../etc' }, /refused document root/],
    ['a document root with a space', { root: '/usr/home/a b' }, /refused document root/],
    ['a rewrite target with a variable', { rewrites: [{ match: 'exact', from: '/a', to: '/b$request_uri', code: 301 }] }, /refused rewrite target/],
    ['a rewrite source with a regex', { rewrites: [{ match: 'prefix', from: '/(.*)', to: '/b', code: 301 }] }, /refused rewrite source/],
    ['a redirect code nginx would not treat as one', { rewrites: [{ match: 'exact', from: '/a', to: '/b', code: 200 as 301 }] }, /refused redirect code/],
    ['a rewrite match that is neither exact nor prefix', { rewrites: [{ match: 'regex' as 'exact', from: '/a', to: '/b', code: 301 }] }, /refused rewrite match/],
    ['a rewrite on a PHP entry point', { rewrites: [{ match: 'exact', from: '/index.php', to: '/b', code: 301 }] }, /refused rewrite exact "\/index\.php": another location/],
    ['a rewrite on a denied path', { rewrites: [{ match: 'prefix', from: '/mas_assets/theme/private', to: '/b', code: 301 }] }, /another location has that path/],
    ['a prefix rewrite of everything', { rewrites: [{ match: 'prefix', from: '/', to: '/b', code: 301 }] }, /another location has that path/],
    ['two rewrites of one path', { rewrites: [{ match: 'exact', from: '/a', to: '/b', code: 301 }, { match: 'exact', from: '/a', to: '/c', code: 302 }] }, /another location has that path/],
    ['a PHP entry point with a regex', { phpEntryPoints: ['.*\\.php'] }, /refused PHP entry point/],
    ['a backend with an option', { backends: [{ address: '10.0.0.1:9000 backup', weight: 1 }] }, /refused backend/],
    ['a backend given by name (nginx would resolve it at load)', { backends: [{ address: 'php.example.net:9000', weight: 1 }] }, /refused IP/],
    ['no backend', { backends: [] }, /no PHP backend/],
    ['an fs name in capitals', { fsName: 'Bio' }, /refused fs name/],
  ])('refuses %s, naming the install', (_what, overrides, message) => {
    expect(() => renderDispatcher(dispatcher([shop(overrides as Partial<InstallInput>)]))).toThrow(RenderError);
    expect(() => renderDispatcher(dispatcher([shop(overrides as Partial<InstallInput>)]))).toThrow(message);
  });

  it('refuses two installs with the same fs name', () => {
    expect(() => renderDispatcher(dispatcher([shop(), shop({ id: 8 })]))).toThrow(/two installs named bioexcouk/);
  });
});

describe('renderEach', () => {
  it('refuses only the install it cannot render, naming it, and renders the others', () => {
    const { files, refused } = renderEach(dispatcher([shop(), shop({ id: 9, fsName: 'broken', root: '/usr/home/a b' }), shop({ id: 10, fsName: 'fine' })]));
    expect([...files.keys()].filter((n) => !n.startsWith('upstreams/')).sort()).toEqual(['defaults.conf', 'shops.conf', 'shops/bioexcouk.conf', 'shops/fine.conf']);
    const shared = renderEach(dispatcher([shop({ rewrites: [], sites: [shop().sites[1]!] }), shop({ id: 9, fsName: 'broken', root: '/usr/home/a b', rewrites: [], sites: [shop().sites[1]!] })]));
    expect(shared.refused).toEqual([{ id: 9, fsName: 'broken', error: expect.stringMatching(/^install 9 \(broken\): refused document root/) }]);
    expect([...shared.files.keys()].filter((n) => n.startsWith('hosts/'))).toEqual(['hosts/bioexcouk.conf']);
    expect(refused).toEqual([{ id: 9, fsName: 'broken', error: expect.stringMatching(/^install 9 \(broken\): refused document root/) }]);
  });

  it("renders from the previous render's memo exactly what it renders afresh, and renders anew what changed", () => {
    const first = renderEach(dispatcher([shop(), shop({ id: 9, fsName: 'another' })]), new Map());
    expect(first.memo.size).toBe(2);
    const changed = shop({ id: 9, fsName: 'another', rewrites: [], backends: [{ address: '10.0.0.40:9000', weight: 1 }] });
    const again = renderEach(dispatcher([shop(), changed]), first.memo);
    expect(again.files).toEqual(renderEach(dispatcher([shop(), changed])).files);
    expect(again.files.get('shops/another.conf')).not.toEqual(first.files.get('shops/another.conf'));
    expect(again.upstreamOf.get('shops/another.conf')).not.toBe(again.upstreamOf.get('shops/bioexcouk.conf'));
    // The memo holds what this render used, no more.
    expect(renderEach(dispatcher([shop()]), again.memo).memo.size).toBe(1);
  });

  it('keeps the main include the same whatever the installs (a one-install change writes one file)', () => {
    const one = renderEach(dispatcher([shop()])).files.get('shops.conf');
    const two = renderEach(dispatcher([shop(), shop({ id: 9, fsName: 'another' })])).files.get('shops.conf');
    expect(one).toBe(two);
  });
});

describe('web rules of the manifest', () => {
  const oneSite = (overrides: Partial<InstallInput> = {}) => shop({ rewrites: [], deny: [], sites: [{ hostname: 'shop.example.com', secureHostname: null, ips: ['10.1.0.1'], cert: null }], ...overrides });
  const render = (overrides: Partial<InstallInput> = {}) => renderInstall(oneSite(overrides), '/var/log/nginx/shops.log', 'php_x');
  /** The regex of the install's deny-pattern location, as JavaScript runs it (the PCRE written uses nothing JavaScript reads otherwise). */
  const denyRegex = (conf: string) => new RegExp(/location ~ "(.*)" \{ deny all; \}/.exec(conf)![1]!);

  it('renders an install without deny patterns, denied files or routing as before (empty ones and pass uri alone change nothing)', () => {
    const before = render();
    expect(render({ denyPatterns: [], deniedFiles: [], routing: null })).toBe(before);
    expect(render({ routing: { pass: 'uri' } })).toBe(before);
    expect(render({ routing: { pass: 'uri', notFound: [] } })).toBe(before);
    expect(before).not.toMatch(/@front|fastcgi_split_path_info/);
    // One regex location: dot files, the denied path and PHP files that are no entry point.
    expect(before.match(/location ~ /g)).toHaveLength(1);
  });

  it('renders deny patterns, denied files and routing by query with notFound (snapshot)', () => {
    expect(render({ denyPatterns: ['*.tpl', 'system/*.log', '.*', '*.tpl'], deniedFiles: ['config.php', 'settings.ini'], routing: { pass: 'query', param: '_route_', notFound: ['*.png', 'x?.css'] } })).toMatchSnapshot();
  });

  it('renders routing by PATH_INFO: every entry point also takes a path after it (snapshot)', () => {
    expect(render({ routing: { pass: 'pathInfo' } })).toMatchSnapshot();
  });

  it('turns globs into one regex location: without / over the file name, with / over the path from the document root', () => {
    const conf = render({ denyPatterns: ['*.tpl', 'system/*.log', 'a?c.ini', '.*'] });
    expect(conf.match(/location ~ "/g)).toHaveLength(1);
    const denied = denyRegex(conf);
    for (const path of ['/x.tpl', '/theme/deep/x.tpl', '/.tpl', '/system/error.log', '/abc.ini', '/dir/a-c.ini', '/.env', '/a/.htaccess']) expect({ path, denied: denied.test(path) }).toEqual({ path, denied: true });
    for (const path of ['/x.tpl.txt', '/x.tpl/', '/xtpl', '/a/system/error.log', '/system/sub/error.log', '/system/errorxlog', '/abbc.ini', '/a/c.ini', '/index.html', '/']) expect({ path, denied: denied.test(path) }).toEqual({ path, denied: false });
    // The regex denies PHP files too; the entry point is an exact location, which nginx takes before any regex.
    expect(denied.test('/index.php')).toBe(true);
    expect(conf).toContain('    location = /index.php {');
  });

  it('denies by one regex location: dot files, denied paths no ^~ location can shadow, the deny patterns, PHP files (an entry point, exact, still wins)', () => {
    const conf = render({ denyPatterns: ['*.php'], deny: ['private/a.b+c', 'old/keep'], rewrites: [{ match: 'prefix', from: '/old/', to: '/new/', code: 301 }] });
    expect(conf.match(/location ~ /g)).toHaveLength(1);
    expect(conf).toContain('    location ~ "/\\.|^/private/a\\.b\\+c|/(?:[^/]*\\.php)$|\\.php$" { deny all; }');
    // Under a prefix rewrite (^~: no regex is tried after it), a denied path stays a prefix location of its own, which the longer prefix wins.
    expect(conf).toContain('    location ^~ /old/keep { deny all; }');
    expect(conf).toContain('    location = /index.php {');
    // A denied path holding an entry point's PATH_INFO location stays a prefix location too.
    expect(render({ deny: ['admin'], phpEntryPoints: ['index.php', 'admin/index.php'], routing: { pass: 'pathInfo' } })).toContain('    location ^~ /admin { deny all; }');
  });

  it('denies rendered files exactly, but never an entry point rendered from a template, and keeps rewrites off them', () => {
    const conf = render({ deniedFiles: ['settings.ini', 'index.php', 'conf/db.ini'] });
    expect(conf).toContain('    location = /settings.ini { deny all; }');
    expect(conf).toContain('    location = /conf/db.ini { deny all; }');
    expect(conf).not.toContain('location = /index.php { deny all; }');
    expect(() => render({ deniedFiles: ['settings.ini'], rewrites: [{ match: 'exact', from: '/settings.ini', to: '/', code: 301 }] })).toThrow(/another location has that path/);
  });

  it('serves the index of every entry point directory (the front controller first), only when some entry point lives in one', () => {
    expect(render({ phpEntryPoints: ['index.php', 'admin/index.php', 'api/app.php'] })).toContain('    index index.php app.php;\n');
    expect(render({ frontController: null, phpEntryPoints: ['index.php', 'manage/admin.php'] })).toContain('    index admin.php;\n');
    expect(render({ frontController: null, phpEntryPoints: ['index.php'] })).not.toContain('index ');
  });

  it('routes misses by query parameter, by PATH_INFO or to the front controller, with notFound globs answering 404 first', () => {
    expect(render({ routing: { pass: 'query', param: '_route_' } })).toContain('    try_files $uri $uri/ @front;\n    location @front {\n        rewrite (?s)^/(.*)$ /index.php?_route_=$1 last;\n    }\n');
    expect(render({ routing: { pass: 'pathInfo' } })).toContain('        rewrite ^ /index.php$uri last;\n');
    const uri = render({ routing: { pass: 'uri', notFound: ['*.png'] } });
    expect(uri).toContain('        if ($uri ~ "/(?:[^/]*\\.png)$") { return 404; }\n        rewrite ^ /index.php last;\n');
    expect(render({ routing: { pass: 'pathInfo' }, phpEntryPoints: ['index.php', 'a+b/x.php'] })).toContain('        fastcgi_split_path_info (?s)^(/a\\+b/x\\.php)(/.*)$;\n');
  });

  it.each([
    ['a deny pattern with a quote', { denyPatterns: ['*.tpl" { }'] }, /refused deny pattern/],
    ['a deny pattern with a regex', { denyPatterns: ['(.*)'] }, /refused deny pattern/],
    ['a deny pattern with a variable', { denyPatterns: ['$uri'] }, /refused deny pattern/],
    ['a deny pattern with a .. segment', { denyPatterns: ['../*.ini'] }, /refused deny pattern/],
    ['a deny pattern with a space', { denyPatterns: ['a b'] }, /refused deny pattern/],
    ['a not-found glob with a brace', { routing: { pass: 'uri', notFound: ['*.{png,css}'] } }, /refused not-found glob/],
    ['a denied file outside the document root', { deniedFiles: ['../config.php'] }, /refused denied file/],
    ['a denied file with a directive', { deniedFiles: ['x.ini { allow all; }'] }, /refused denied file/],
    ['routing without a front controller', { frontController: null, routing: { pass: 'uri' } }, /refused routing without a front controller/],
    ['routing by query without a parameter', { routing: { pass: 'query' } }, /refused routing param undefined/],
    ['routing by query with a parameter that is not a name', { routing: { pass: 'query', param: '_route_=x&a' } }, /refused routing param/],
    ['a parameter without routing by query', { routing: { pass: 'pathInfo', param: 'p' } }, /refused routing param "p" with pass pathInfo/],
    ['an unknown routing pass', { routing: { pass: 'regex' as 'uri' } }, /refused routing pass "regex"/],
    ['routing to a front controller that is not an entry point', { frontController: 'app.php', routing: { pass: 'pathInfo' } }, /refused routing to \/app\.php, not a PHP entry point/],
  ])('refuses %s, naming the install', (_what, overrides, message) => {
    expect(() => renderDispatcher(dispatcher([oneSite(overrides as Partial<InstallInput>)]))).toThrow(message);
  });
});

describe('webRulesOf (the loader: manifest to render input)', () => {
  const manifest = (web: Partial<CodebaseManifest['web']>, templates = SAMPLE_MANIFEST.templates): CodebaseManifest => ({ ...SAMPLE_MANIFEST, templates, web: { ...SAMPLE_MANIFEST.web, ...web } });

  it('denies the rendered templates under the document root, relative to it, and no other', () => {
    const rules = webRulesOf(manifest({}, [
      { source: 'a.tpl', target: 'html/config.php', language: 'php' },
      { source: 'b.tpl', target: 'html/admin/config.ini', language: 'ini' },
      { source: 'c.tpl', target: 'htmlx/other.ini', language: 'ini' },
      { source: 'd.tpl', target: 'heavymetal/config.php', language: 'php' },
    ]));
    expect(rules.deniedFiles).toEqual(['config.php', 'admin/config.ini']);
  });

  it('passes deny patterns and routing on, and renders the sample manifest exactly as before the web rules', () => {
    const rules = webRulesOf(manifest({ denyPatterns: ['*.tpl'], routing: { pass: 'query', param: '_route_', notFound: ['*.png'] } }));
    expect(rules).toMatchObject({ denyPatterns: ['*.tpl'], routing: { pass: 'query', param: '_route_', notFound: ['*.png'] }, frontController: 'index.php' });
    expect(webRulesOf(manifest({ routing: { pass: 'pathInfo' } })).routing).toEqual({ pass: 'pathInfo' });
    const sample = webRulesOf(SAMPLE_MANIFEST);
    expect(sample).toEqual({ phpEntryPoints: ['index.php'], deny: ['mas_assets/theme/private'], denyPatterns: [], deniedFiles: [], frontController: 'index.php', routing: null });
    const before = { phpEntryPoints: ['index.php'], deny: ['mas_assets/theme/private'], frontController: 'index.php' };
    expect(renderInstall(shop({ ...before, rewrites: [] }), '/l', 'php_x')).toBe(renderInstall(shop({ ...sample, rewrites: [] }), '/l', 'php_x'));
  });
});
