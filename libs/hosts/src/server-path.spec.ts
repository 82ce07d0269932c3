import { checkServerPath, UnsafePathError, type ServerRoots } from './server-path.js';

const server: ServerRoots = {
  hostname: 'dispatch1.example.net',
  homeRoot: '/usr/home',
  sharedCodeRoot: '/home/shared_codes/',
  nginxConfDir: '/etc/nginx/shops',
  cronDir: '/etc/cron.d',
  certsRoot: '/usr/home/certs',
  phpFpmPoolDir: null,
};

describe('checkServerPath', () => {
  it('accepts paths inside a root, normalized', () => {
    expect(checkServerPath(server, '/usr/home/shop1/heavymetal/config.php')).toBe('/usr/home/shop1/heavymetal/config.php');
    expect(checkServerPath(server, '/home/shared_codes//code_share_free_1/')).toBe('/home/shared_codes/code_share_free_1');
    expect(checkServerPath(server, '/usr/home/./shop1')).toBe('/usr/home/shop1');
    expect(checkServerPath(server, '/etc/cron.d')).toBe('/etc/cron.d');
  });

  it('refuses hostile and mistaken paths with the reason', () => {
    const cases: [string, RegExp][] = [
      ['/usr/home/../../etc/passwd', /contains \.\./],
      ['/usr/home/shop1/..', /contains \.\./],
      ['usr/home/shop1', /not absolute/],
      ['/usr/home/shop1\0/x', /NUL/],
      ['/etc/passwd', /outside the roots/],
      ['/usr/homer/shop1', /outside the roots/],
      ['/', /outside the roots/],
      ['/usr/home/a\nb', /line break/],
      ['', /empty/],
    ];
    for (const [path, reason] of cases) {
      expect(() => checkServerPath(server, path)).toThrow(UnsafePathError);
      expect(() => checkServerPath(server, path)).toThrow(reason);
    }
  });

  it('refuses a root itself when removing', () => {
    expect(() => checkServerPath(server, '/usr/home', { allowRoot: false })).toThrow(/is the root \/usr\/home itself/);
    expect(checkServerPath(server, '/usr/home/shop1', { allowRoot: false })).toBe('/usr/home/shop1');
  });
});
