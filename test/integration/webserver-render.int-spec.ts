import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { MAIN_INCLUDE, renderDispatcher, type InstallInput } from '@app/webserver';

/** Rendered configs checked by the real `nginx -t`, not by reading them. */
describe('rendered dispatcher config under nginx -t', () => {
  const dir = mkdtempSync(join(tmpdir(), 'render-nginx-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Writes the files and a main config that includes them, then runs nginx -t on it. */
  const nginxTest = (name: string, installs: InstallInput[]) => {
    const confDir = join(dir, name);
    const files = renderDispatcher({ confDir, accessLog: join(confDir, 'access.log'), installs });
    for (const [path, content] of files) {
      mkdirSync(dirname(join(confDir, path)), { recursive: true });
      writeFileSync(join(confDir, path), content);
    }
    const main = join(confDir, 'nginx.conf');
    writeFileSync(main, `pid ${join(confDir, 'nginx.pid')};\nerror_log stderr;\nevents {}\nhttp {\n  include ${join(confDir, MAIN_INCLUDE)};\n}\n`);
    return spawnSync('nginx', ['-t', '-q', '-e', 'stderr', '-c', main], { encoding: 'utf8' });
  };

  it('accepts installs with certificates, redirects, denied paths, deny patterns, routing and weighted backends', () => {
    const certs = join(dir, 'certs');
    mkdirSync(certs);
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=www.bio-ex.co.uk', '-keyout', join(certs, 'bioex.key'), '-out', join(certs, 'bioex.pem')], { stdio: 'ignore' });
    const result = nginxTest('fixture', [
      {
        id: 1, fsName: 'bioexcouk', root: join(dir, 'home/bioexcouk/html'), phpEntryPoints: ['index.php'], deny: ['mas_assets/private'], frontController: 'index.php',
        backends: [{ address: '127.0.0.1:9000', weight: 2 }, { address: 'unix:/run/php/php-fpm.sock', weight: 1 }, { address: '127.0.0.2:9000', weight: 0 }],
        rewrites: [{ match: 'prefix', from: '/old/', to: 'https://www.bio-ex.co.uk/', code: 301 }, { match: 'exact', from: '/sale', to: '/category/sale', code: 302 }],
        sites: [{ hostname: 'www.bio-ex.co.uk', secureHostname: 'secure.bio-ex.co.uk', ips: ['127.0.91.1', '127.0.91.2'], cert: { pem: join(certs, 'bioex.pem'), key: join(certs, 'bioex.key') } }],
      },
      {
        id: 3, fsName: 'routed', root: join(dir, 'home/routed/html'), phpEntryPoints: ['index.php', 'admin/index.php'], deny: [], frontController: 'index.php',
        denyPatterns: ['*.twig', '*.tpl', '*.ini', '*.log', '*.sql', '.*', 'system/storage/*'], deniedFiles: ['config.php', 'admin/config.php'],
        routing: { pass: 'query', param: '_route_', notFound: ['*.png', '*.jpg', '*.css', '*.js'] },
        backends: [{ address: '127.0.0.1:9000', weight: 1 }], rewrites: [], sites: [{ hostname: 'routed.example.com', secureHostname: null, ips: ['127.0.91.4'], cert: { pem: join(certs, 'bioex.pem'), key: join(certs, 'bioex.key') } }],
      },
      {
        id: 4, fsName: 'pathinfo', root: join(dir, 'home/pathinfo/html'), phpEntryPoints: ['index.php', 'admin/index.php'], deny: [], frontController: 'index.php',
        routing: { pass: 'pathInfo', notFound: ['*.png'] }, backends: [{ address: '127.0.0.1:9000', weight: 1 }], rewrites: [], sites: [{ hostname: 'pathinfo.example.com', secureHostname: null, ips: ['127.0.91.5'], cert: null }],
      },
      { id: 2, fsName: 'plain', root: join(dir, 'home/plain/html'), phpEntryPoints: ['index.php'], deny: [], frontController: null, backends: [{ address: '127.0.0.1:9000', weight: 1 }], rewrites: [], sites: [{ hostname: 'plain.example.com', secureHostname: null, ips: ['127.0.91.1'], cert: null }] },
    ]);
    expect({ status: result.status, stderr: result.stderr }).toEqual({ status: 0, stderr: '' });
  });

  it('is a real check: a certificate that does not exist fails nginx -t, naming the file', () => {
    const result = nginxTest('broken', [
      { id: 3, fsName: 'nocert', root: join(dir, 'home/nocert'), phpEntryPoints: ['index.php'], deny: [], frontController: null, backends: [{ address: '127.0.0.1:9000', weight: 1 }], rewrites: [], sites: [{ hostname: 'nocert.example.com', secureHostname: null, ips: ['127.0.91.3'], cert: { pem: join(dir, 'missing.pem'), key: join(dir, 'missing.key') } }] },
    ]);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain('missing.pem');
  });

  it('renders any catalog state the API accepts into a config nginx accepts (random states)', () => {
    // Deterministic pseudo-random states drawn from what validation lets through.
    let seed = 42;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      // The high bits: the low bits of a power-of-two LCG cycle with a short period (rnd(4) would repeat every 4 draws).
      return Math.floor(seed / 65536) % n;
    };
    const word = (alphabet: string, min: number, max: number) => Array.from({ length: min + rnd(max - min + 1) }, () => alphabet[rnd(alphabet.length)]).join('');
    const label = () => `${word('abcdefghijklmnopqrstuvwxyz0123456789', 1, 1)}${word('abcdefghijklmnopqrstuvwxyz0123456789-', 0, 12)}${word('abcdefghijklmnopqrstuvwxyz0123456789', 1, 1)}`;
    const path = () => Array.from({ length: 1 + rnd(3) }, () => `${word('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@+-', 1, 1)}${word('abcdefghijklmnopqrstuvwxyz0123456789._@+-', 0, 10)}`).join('/');
    // Globs as the manifest's GLOB lets them through: segments of letters, digits and . _ - * ? (a `.` segment too, never `..`).
    const glob = () => Array.from({ length: 1 + rnd(2) }, () => (rnd(8) === 0 ? '.' : word('abcXYZ019._-*?', 1, 8).replace(/^\.\.$/, 'a.'))).join('/');
    const installs: InstallInput[] = Array.from({ length: 60 }, (_, i) => {
      const phpEntryPoints = Array.from({ length: 1 + rnd(3) }, () => `${path()}.php`);
      const front = rnd(2) ? phpEntryPoints[rnd(phpEntryPoints.length)]! : null;
      const pass = (['uri', 'query', 'pathInfo'] as const)[rnd(3)]!;
      return {
        id: i + 1,
        fsName: `s${i}${word('abcdefghij', 0, 6)}`,
        root: `${dir}/home/${path()}`,
        phpEntryPoints,
        deny: Array.from({ length: rnd(3) }, () => path()),
        denyPatterns: Array.from({ length: rnd(4) }, glob),
        // Rendered templates under the document root, sometimes an entry point itself.
        deniedFiles: [...Array.from({ length: rnd(3) }, () => path()), ...(rnd(4) === 0 ? [phpEntryPoints[0]!] : [])],
        frontController: front,
        routing: front && rnd(3) ? { pass, ...(pass === 'query' ? { param: `_${word('abcdefgh_', 1, 8)}` } : {}), ...(rnd(2) ? { notFound: Array.from({ length: 1 + rnd(3) }, glob) } : {}) } : null,
        backends: Array.from({ length: 1 + rnd(3) }, (_, b) => ({ address: `127.0.${rnd(255)}.${1 + b}:${9000 + rnd(100)}`, weight: rnd(5) })),
        rewrites: Array.from({ length: rnd(3) }, (_, r) => ({ match: rnd(2) ? 'exact' : 'prefix', from: `/r${r}/${path()}`, to: rnd(2) ? `/${path()}` : `https://${label()}.example.com/${path()}`, code: rnd(2) ? 301 : 302 }) as InstallInput['rewrites'][number]),
        sites: Array.from({ length: 1 + rnd(3) }, (_, s) => ({
          hostname: `${label()}.${label()}${i}x${s}.com`,
          secureHostname: rnd(2) ? `secure${i}x${s}.${label()}.net` : null,
          ips: Array.from({ length: 1 + rnd(2) }, () => `127.0.92.${1 + rnd(200)}`),
          cert: null,
        })),
      };
    });
    const rendered = renderDispatcher({ confDir: dir, accessLog: join(dir, 'a.log'), installs });
    // The draw reaches every new rule.
    const all = [...rendered.values()].join('\n');
    for (const rule of ['location ~ "', '@front', 'fastcgi_split_path_info', '=$1 last;', '{ return 404; }', '{ deny all; }']) expect(all).toContain(rule);
    const result = nginxTest('random', installs);
    expect({ status: result.status, stderr: result.stderr }).toEqual({ status: 0, stderr: '' });
  });
});
