import type { Server } from '@app/catalog';
import {
  checkSetting,
  comparePhp,
  describePhpFailures,
  normalizeExtension,
  parsePhpInfoDirectives,
  parsePhpModules,
  parsePhpVersion,
  phpServersOf,
  pickPhpFpmBinary,
  sameIniValue,
  type PhpProbe,
  type PhpServerCheck,
} from './php-requirements.js';

/** Excerpts of Debian 12's php-fpm8.2 output. */
const VERSION = `PHP 8.2.36 (fpm-fcgi) (built: Nov 18 2026 20:02:04)
Copyright (c) The PHP Group
Zend Engine v4.2.36, Copyright (c) Zend Technologies
    with Zend OPcache v8.2.36, Copyright (c), by Zend Technologies
`;
const MODULES = `[PHP Modules]
calendar
cgi-fcgi
Core
mysqli
PDO
pdo_mysql
Zend OPcache
zlib

[Zend Modules]
Zend OPcache

`;
const INFO = `phpinfo()
PHP Version => 8.2.36

Environment

Variable => Value
WEIRD => a => b => c

fpm-fcgi

php-fpm => active

Directive => Local Value => Master Value
cgi.fix_pathinfo => On => On

Core

PHP Version => 8.2.36

Directive => Local Value => Master Value
allow_url_fopen => On => On
disable_functions => exec,shell_exec => exec,shell_exec
error_reporting => 22527 => 22527
highlight.comment => <font style="color: #FF8000">#FF8000</font> => <font style="color: #FF8000">#FF8000</font>
memory_limit => 128M => 128M
open_basedir => no value => no value
upload_max_filesize => 2M => 2M
weird.arrow => a => b => a => b

Zend OPcache

Opcode Caching => Up and Running

Directive => Local Value => Master Value
opcache.enable => On => On
opcache.memory_consumption => 128 => 128
opcache.use_cwd => On => On
zend.assertions => -1 => -1
`;

const probe = (overrides: Partial<PhpProbe> = {}): PhpProbe => ({
  binary: '/usr/sbin/php-fpm8.2',
  source: 'fpm',
  version: parsePhpVersion(VERSION),
  modules: parsePhpModules(MODULES),
  ini: parsePhpInfoDirectives(INFO),
  ...overrides,
});

describe('parsing what PHP says about itself', () => {
  it('reads the version of -v (also a distribution suffix) and of -i', () => {
    expect(parsePhpVersion(VERSION)).toBe('8.2.36');
    expect(parsePhpVersion('PHP 8.2.7-1~deb12u1 (cli) (built: Jun  9 2023 19:37:27) (NTS)\n')).toBe('8.2.7');
    expect(parsePhpVersion('PHP Warning:  Module "x" is already loaded in Unknown on line 0\nPHP 7.4.33 (cli)\n')).toBe('7.4.33');
    expect(parsePhpVersion(INFO)).toBe('8.2.36');
    expect(parsePhpVersion('bash: php: command not found')).toBeNull();
  });

  it('lists the PHP and Zend modules of -m once each, without headers or warnings', () => {
    expect(parsePhpModules(MODULES)).toEqual(['calendar', 'cgi-fcgi', 'Core', 'mysqli', 'PDO', 'pdo_mysql', 'Zend OPcache', 'zlib']);
    expect(parsePhpModules('PHP Warning:  PHP Startup: Unable to load dynamic library \'gd\'\n[PHP Modules]\nCore\r\nPHP Warning:  x\n\n[Zend Modules]\n\n')).toEqual(['Core']);
    expect(parsePhpModules('')).toEqual([]);
  });

  it('reads the local value of every directive of -i, only from directive tables', () => {
    const ini = parsePhpInfoDirectives(INFO);
    expect(ini).toMatchObject({
      'cgi.fix_pathinfo': 'On',
      allow_url_fopen: 'On',
      disable_functions: 'exec,shell_exec',
      memory_limit: '128M',
      open_basedir: '',
      'opcache.memory_consumption': '128',
      'zend.assertions': '-1',
      'highlight.comment': '<font style="color: #FF8000">#FF8000</font>',
      'weird.arrow': 'a => b',
    });
    // Rows of other tables (the environment, a module's status) are not directives.
    expect(ini).not.toHaveProperty('WEIRD');
    expect(ini).not.toHaveProperty('php-fpm');
    expect(ini).not.toHaveProperty('PHP Version');
  });

  it('picks the newest php-fpm, a versioned one before a plain one', () => {
    expect(pickPhpFpmBinary(['/usr/sbin/php-fpm8.1', '/usr/sbin/php-fpm8.2', ''])).toBe('/usr/sbin/php-fpm8.2');
    expect(pickPhpFpmBinary(['/usr/sbin/php-fpm8.10', '/usr/sbin/php-fpm8.9'])).toBe('/usr/sbin/php-fpm8.10');
    expect(pickPhpFpmBinary(['/usr/local/sbin/php-fpm', '/usr/sbin/php-fpm7.4'])).toBe('/usr/sbin/php-fpm7.4');
    expect(pickPhpFpmBinary(['/usr/local/sbin/php-fpm'])).toBe('/usr/local/sbin/php-fpm');
    // Debian's merged /usr lists the same binary under /sbin too.
    expect(pickPhpFpmBinary(['/usr/sbin/php-fpm8.2', '/sbin/php-fpm8.2'])).toBe('/usr/sbin/php-fpm8.2');
    expect(pickPhpFpmBinary(['/usr/sbin/php-fpm-wrapper', '/usr/bin/php8.2'])).toBeNull();
    expect(pickPhpFpmBinary([])).toBeNull();
  });

  it('names extensions regardless of case and of their other names', () => {
    expect(normalizeExtension('Zend OPcache')).toBe('opcache');
    expect(normalizeExtension('opcache')).toBe('opcache');
    expect(normalizeExtension(' PDO_MySQL ')).toBe('pdo_mysql');
    expect(normalizeExtension('the ionCube PHP Loader')).toBe('ioncube');
  });
});

describe('ini values', () => {
  it('compares booleans, sizes and function lists by meaning', () => {
    expect(sameIniValue('short_open_tag', 'On', '1')).toBe(true);
    expect(sameIniValue('short_open_tag', 'off', '')).toBe(true);
    expect(sameIniValue('short_open_tag', 'true', 'Off')).toBe(false);
    expect(sameIniValue('memory_limit', '256M', '268435456')).toBe(true);
    expect(sameIniValue('memory_limit', '1G', '1024M')).toBe(true);
    expect(sameIniValue('memory_limit', '-1', '128M')).toBe(false);
    expect(sameIniValue('disable_functions', 'shell_exec, EXEC', 'exec,shell_exec')).toBe(true);
    expect(sameIniValue('disable_functions', 'exec', 'exec,shell_exec')).toBe(false);
    expect(sameIniValue('date.timezone', 'UTC', 'UTC')).toBe(true);
    expect(sameIniValue('date.timezone', 'UTC', 'Europe/Berlin')).toBe(false);
  });

  it('notes what a pool applies, refuses what only php.ini at startup can do', () => {
    const ini = parsePhpInfoDirectives(INFO);
    expect(checkSetting('memory_limit', '128M', ini)).toMatchObject({ status: 'same', actual: '128M' });
    expect(checkSetting('memory_limit', '512M', ini)).toMatchObject({ status: 'pool', actual: '128M', detail: "the server has 128M; the install's pool sets 512M" });
    expect(checkSetting('upload_max_filesize', '64M', ini).status).toBe('pool');
    expect(checkSetting('opcache.use_cwd', '1', ini).status).toBe('same');
    expect(checkSetting('opcache.use_cwd', '0', ini).status).toBe('pool');
    // OPcache's shared memory: more than asked satisfies, less cannot be mended per pool.
    expect(checkSetting('opcache.memory_consumption', '64', ini).status).toBe('same');
    expect(checkSetting('opcache.memory_consumption', '256', ini)).toMatchObject({ status: 'unsatisfiable', detail: expect.stringMatching(/has 128, the shop needs 256: read when php-fpm starts/) });
    // A pool disables more functions, never enables one.
    expect(checkSetting('disable_functions', 'exec,shell_exec,system', ini).status).toBe('pool');
    expect(checkSetting('disable_functions', 'system', ini)).toMatchObject({ status: 'unsatisfiable', detail: expect.stringMatching(/disables exec, shell_exec, which the shop needs/) });
    expect(checkSetting('disable_functions', '', ini).status).toBe('unsatisfiable');
    expect(checkSetting('opcache.enable', 'Off', ini).status).toBe('pool');
    expect(checkSetting('opcache.enable', 'On', { ...ini, 'opcache.enable': 'Off' }).status).toBe('unsatisfiable');
    expect(checkSetting('zend.assertions', '1', ini).status).toBe('unsatisfiable');
    expect(checkSetting('zend.assertions', '0', { ...ini, 'zend.assertions': '1' }).status).toBe('pool');
    expect(checkSetting('opcache.jit', 'tracing', ini)).toMatchObject({ status: 'unsatisfiable', actual: null, detail: expect.stringMatching(/not a directive this PHP knows/) });
    expect(checkSetting('extension', 'gd.so', ini).status).toBe('unsatisfiable');
  });
});

describe('a server against a manifest', () => {
  it('passes a manifest without php, and one the server satisfies', () => {
    expect(comparePhp(undefined, probe())).toEqual({ ok: true, problems: [], missingExtensions: [], settings: [], notes: [] });
    const ok = comparePhp({ minVersion: '7.0', extensions: ['pdo_mysql', 'OPcache', 'mysqli', 'core'], settings: [{ name: 'memory_limit', value: '256M' }] }, probe());
    expect(ok).toMatchObject({ ok: true, problems: [], missingExtensions: [] });
    expect(ok.notes).toEqual(["memory_limit: the server has 128M; the install's pool sets 256M"]);
    expect(comparePhp({ minVersion: '8.2' }, probe()).ok).toBe(true);
    expect(comparePhp({ minVersion: '8.2.36' }, probe()).ok).toBe(true);
  });

  it('lists every problem: missing extensions, too old a version, settings out of a pool\'s reach', () => {
    const result = comparePhp(
      {
        minVersion: '8.3',
        extensions: ['pdo_mysql', 'nosuchext', 'gd', 'Zend OPcache'],
        settings: [
          { name: 'disable_functions', value: '' },
          { name: 'upload_max_filesize', value: '64M' },
        ],
      },
      probe(),
    );
    expect(result.ok).toBe(false);
    expect(result.missingExtensions).toEqual(['nosuchext', 'gd']);
    expect(result.problems).toEqual([
      'PHP 8.2.36 is older than the 8.3 the shop needs',
      'missing PHP extensions: nosuchext, gd',
      "disable_functions: the server's php.ini disables exec, shell_exec, which the shop needs: a pool can disable more, never enable one again",
    ]);
    expect(result.settings.map((s) => [s.name, s.status])).toEqual([
      ['disable_functions', 'unsatisfiable'],
      ['upload_max_filesize', 'pool'],
    ]);
    expect(comparePhp({ minVersion: '99.0' }, probe()).problems).toEqual(['PHP 8.2.36 is older than the 99.0 the shop needs']);
    expect(comparePhp({ minVersion: '8.1' }, probe({ version: null })).problems[0]).toMatch(/version could not be read/);
  });

  it('says when the CLI stood in for php-fpm', () => {
    expect(comparePhp({}, probe({ binary: 'php', source: 'cli' })).notes[0]).toMatch(/no php-fpm found: php \(the CLI\) was asked/);
  });

  it('describes the failing servers for a refusal', () => {
    const check = (hostname: string, ok: boolean, problems: string[], error: string | null = null): PhpServerCheck => ({
      serverId: 1, hostname, ok, problems, error, binary: null, source: null, version: null, missingExtensions: [], settings: [], notes: [],
    });
    expect(
      describePhpFailures([check('a.example.net', false, ['missing PHP extensions: x', 'PHP 8.2 is older']), check('b.example.net', true, []), check('c.example.net', false, [], 'timed out')]),
    ).toBe('a.example.net: missing PHP extensions: x; PHP 8.2 is older | c.example.net: could not be asked (timed out)');
  });
});

describe('the servers that run a group\'s PHP', () => {
  it('are its master and every active dispatcher or handler', () => {
    const server = (id: number, roles: Server['roles'], state: Server['state'] = 'active') => ({ id, roles, state }) as Server;
    const servers = [server(1, ['dispatcher']), server(2, ['dispatcher', 'handler']), server(3, ['handler'], 'down'), server(4, ['database']), server(5, ['cloud']), server(6, ['handler'], 'draining'), server(7, ['database'])];
    expect(phpServersOf(servers, { masterServerId: 1 }).map((s) => s.id)).toEqual([1, 2]);
    // The master, whatever its roles and state: the clone runs there.
    expect(phpServersOf(servers, { masterServerId: 3 }).map((s) => s.id)).toEqual([1, 2, 3]);
  });
});
