import { fpmCulpritOf, fpmFirstError } from './pool-pipeline.service.js';
import { iniValue, renderPool, renderPools, type HandlerPoolsInput, type PoolInstallInput } from './pool-render.js';

const frame: Omit<HandlerPoolsInput, 'installs'> = { poolDir: '/etc/php/pools', listenOwner: 'www-data', listenGroup: 'www-data' };
const install = (overrides: Partial<PoolInstallInput> = {}): PoolInstallInput => ({
  id: 7,
  fsName: 'bioexcouk',
  user: 'shop7',
  home: '/usr/home/bioexcouk',
  codeDir: '/usr/shared_codes/heavymetal-1',
  listen: { socket: '/etc/php/pools/run/bioexcouk.sock' },
  settings: [
    { name: 'memory_limit', value: '256M' },
    { name: 'disable_functions', value: 'exec,passthru,shell_exec' },
    { name: 'date.timezone', value: 'Europe/London' },
    { name: 'error_log', value: 'a value with spaces' },
  ],
  ...overrides,
});

describe('renderPool', () => {
  it('renders an ondemand pool of the install user, on a socket owned by nginx, confined to its home and code', () => {
    expect(renderPool(frame, install())).toBe(
      [
        '; install 7: written by the provisioning engine, replaced at every pool rebuild',
        '[bioexcouk]',
        'user = shop7',
        'group = shop7',
        'listen = /etc/php/pools/run/bioexcouk.sock',
        'listen.owner = www-data',
        'listen.group = www-data',
        'listen.mode = 0660',
        'pm = ondemand',
        'pm.max_children = 5',
        'pm.process_idle_timeout = 10s',
        'access.log = /etc/php/pools/logs/bioexcouk.access.log',
        'catch_workers_output = yes',
        'php_admin_value[open_basedir] = /usr/home/bioexcouk:/usr/shared_codes/heavymetal-1:/usr/home/bioexcouk/.php/tmp',
        'php_admin_value[opcache.use_cwd] = 1',
        'php_admin_value[opcache.validate_root] = 1',
        'php_admin_value[opcache.revalidate_path] = 1',
        'php_admin_value[realpath_cache_size] = 0',
        'php_admin_value[session.save_path] = /usr/home/bioexcouk/.php/sessions',
        'php_admin_value[upload_tmp_dir] = /usr/home/bioexcouk/.php/tmp',
        'php_admin_value[sys_temp_dir] = /usr/home/bioexcouk/.php/tmp',
        'php_admin_value[memory_limit] = 256M',
        'php_admin_value[disable_functions] = exec,passthru,shell_exec',
        'php_admin_value[date.timezone] = Europe/London',
        'php_admin_value[error_log] = "a value with spaces"',
        '',
      ].join('\n'),
    );
  });

  it('listens on the private IP and port for a handler that is not the dispatcher, open to the dispatchers only', () => {
    const text = renderPool(frame, install({ listen: { ip: '10.0.0.30', port: 20001, allowedClients: ['10.0.0.12', '10.0.0.11', '10.0.0.12'] } }));
    expect(text).toContain('\nlisten = 10.0.0.30:20001\nlisten.allowed_clients = 10.0.0.11,10.0.0.12\npm = ondemand\n');
    expect(text).not.toContain('listen.owner');
    expect(renderPool(frame, install({ listen: { ip: 'fd00::30', port: 20002, allowedClients: ['fd00::11'] } }))).toContain('\nlisten = [fd00::30]:20002\nlisten.allowed_clients = fd00::11\n');
  });

  it('is byte-identical for the same input, and sorted by fs name', () => {
    const input = { ...frame, installs: [install({ id: 9, fsName: 'zeta', user: 'shop9', home: '/usr/home/zeta' }), install()] };
    const a = renderPools(input);
    const b = renderPools({ ...input, installs: [...input.installs].reverse() });
    expect([...a.files.keys()]).toEqual(['bioexcouk.conf', 'zeta.conf']);
    expect([...a.files]).toEqual([...b.files]);
  });

  it.each<[string, Partial<PoolInstallInput>, RegExp]>([
    ['a setting value with a newline', { settings: [{ name: 'memory_limit', value: '1G\nauto_prepend_file=/tmp/x' }] }, /value of PHP setting memory_limit/],
    ['a setting value with a quote', { settings: [{ name: 'memory_limit', value: '1G" x="' }] }, /value of PHP setting memory_limit/],
    ['a setting value with a ;', { settings: [{ name: 'memory_limit', value: '1G ; x' }] }, /value of PHP setting memory_limit/],
    ['a setting value with ${...}', { settings: [{ name: 'memory_limit', value: '${HOME}' }] }, /value of PHP setting memory_limit/],
    ['a setting name that is not one', { settings: [{ name: 'memory_limit] = 1\nuser', value: 'root' }] }, /PHP setting/],
    ['a setting a manifest may not set', { settings: [{ name: 'auto_prepend_file', value: '/tmp/x.php' }] }, /may not be set by a manifest/],
    ['an engine setting changed', { settings: [{ name: 'opcache.use_cwd', value: '0' }] }, /is the engine's \(1\)/],
    ['open_basedir widened', { settings: [{ name: 'open_basedir', value: '/' }] }, /is the engine's/],
    ['a setting given twice', { settings: [{ name: 'memory_limit', value: '1G' }, { name: 'memory_limit', value: '2G' }] }, /given twice/],
    ['a user that is not a name', { user: 'root\nuser = root' }, /the user/],
    ['a home with a space', { home: '/usr/home/a b' }, /the home/],
    ['a home with ..', { home: '/usr/home/../etc' }, /the home/],
    ['the root as home', { home: '/' }, /the home/],
    ['a socket path with a ;', { listen: { socket: '/run/x;y.sock' } }, /the socket/],
    ['an IP that is not one', { listen: { ip: '10.0.0.300', port: 20001, allowedClients: ['10.0.0.1'] } }, /the listen IP/],
    ['an allowed client that is not one', { listen: { ip: '10.0.0.3', port: 20001, allowedClients: ['any'] } }, /an allowed client/],
    ['a port out of range', { listen: { ip: '10.0.0.3', port: 70000, allowedClients: ['10.0.0.1'] } }, /the port/],
    ['a refusal from the loader', { refusal: 'the manifest of code group x does not parse' }, /does not parse/],
  ])('refuses %s', (_what, overrides, error) => {
    expect(() => renderPool(frame, install(overrides))).toThrow(error);
  });

  it('repeats an engine setting at its own value without a second line', () => {
    const text = renderPool(frame, install({ settings: [{ name: 'opcache.use_cwd', value: '1' }] }));
    expect(text.match(/opcache\.use_cwd/g)).toHaveLength(1);
  });

  it('refuses the install, never the others, and never writes its file', () => {
    const { files, refused } = renderPools({ ...frame, installs: [install(), install({ id: 8, fsName: 'bad', user: 'shop8', home: '/usr/home/bad', settings: [{ name: 'x', value: 'a"b' }] })] });
    expect([...files.keys()]).toEqual(['bioexcouk.conf']);
    expect(refused).toEqual([{ id: 8, fsName: 'bad', error: expect.stringMatching(/value of PHP setting x/) }]);
  });

  it('quotes only what needs quotes', () => {
    expect(iniValue('On')).toBe('On');
    expect(iniValue('')).toBe('""');
    expect(iniValue('E_ALL & ~E_NOTICE')).toBe('"E_ALL & ~E_NOTICE"');
  });
});

describe("php-fpm's verdict", () => {
  const dir = '/etc/php/pools/generations/gabc123-0f0f';
  it('names the pool php-fpm refused, or the file it could not parse', () => {
    const noUser = "[02-Dec-2026 23:23:55] ERROR: [pool bioexcouk] cannot get uid for user 'shop7'\n[02-Dec-2026 23:23:55] ERROR: FPM initialization failed";
    expect(fpmCulpritOf(noUser, dir)).toBe('bioexcouk.conf');
    expect(fpmFirstError(noUser)).toBe("ERROR: [pool bioexcouk] cannot get uid for user 'shop7'");
    const parse = `[02-Dec-2026 23:23:55] ERROR: [${dir}/zeta.conf:10] error while parsing 'php_admin_flag[display_errors]' : invalid boolean value\n[02-Dec-2026 23:23:55] ERROR: Unable to include ${dir}/zeta.conf from x.conf at line 3`;
    expect(fpmCulpritOf(parse, dir)).toBe('zeta.conf');
    expect(fpmCulpritOf('[02-Dec-2026 23:45:54] ERROR: failed to open access log (/etc/php/pools/logs/zeta.access.log): Is a directory (21)', dir)).toBe('zeta.conf');
    expect(fpmCulpritOf('[02-Dec-2026 23:23:55] ERROR: [pool engine-test-sentinel] cannot get uid for user \'www-data\'', dir)).toBeNull();
    expect(fpmCulpritOf('[02-Dec-2026 23:23:55] ERROR: failed to load configuration file', dir)).toBeNull();
  });
});
