import { ValidationFailedError } from '@app/common';
import { manifestSourcePaths, parseManifest } from './manifest.js';
import { SAMPLE_MANIFEST } from './sample-codebase.js';

const plain = () => JSON.parse(JSON.stringify(SAMPLE_MANIFEST)) as Record<string, any>;

async function problems(manifest: unknown): Promise<string> {
  try {
    await parseManifest(manifest);
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationFailedError);
    return (error as Error).message;
  }
  throw new Error('the manifest was accepted');
}

describe('parseManifest', () => {
  it('accepts the sample manifest and lists the checkout paths it names', async () => {
    const manifest = await parseManifest(plain());
    expect(manifest.copy).toEqual(['heavymetal/theme', 'heavymetal/snippets', 'html/mas_assets/theme']);
    expect(manifestSourcePaths(manifest)).toContain('heavymetal/config.php.tpl');
  });

  it.each([
    ['an absolute path', (m: any) => (m.copy = ['/etc']), /copy must be relative paths/],
    ['a .. segment', (m: any) => (m.writable = ['html/../../etc']), /writable must be relative paths/],
    ['a shell word', (m: any) => (m.copy = ['a;rm -rf /']), /copy must be relative/],
    ['a newline', (m: any) => (m.exclude = ['a\nb']), /exclude must be relative/],
    ['an unknown field', (m: any) => (m.hooks = ['curl evil']), /property hooks should not exist/],
    ['a wrong version', (m: any) => (m.version = 2), /version must be 1/],
    ['a cron that is a shell string', (m: any) => (m.crons = [{ schedule: '* * * * *', command: ['sh', '-c', 'rm -rf /; echo'] }]), /crons.command words/],
    ['a bad schedule', (m: any) => (m.crons = [{ schedule: '* * * *', command: ['php'] }]), /crons.schedule/],
    ['a copied path also excluded', (m: any) => (m.exclude = ['heavymetal']), /heavymetal\/theme, heavymetal\/snippets also excluded/],
    ['a copied path inside another', (m: any) => m.copy.push('heavymetal/theme/default'), /heavymetal\/theme\/default inside another copied path/],
    ['a target produced twice', (m: any) => m.links.push({ path: 'heavymetal/config.php', target: 'x' }), /heavymetal\/config.php produced twice/],
    ['a secret declared twice', (m: any) => m.secrets.push({ name: 'cookie_key', length: 16, alphabet: 'hex' }), /cookie_key declared twice/],
    ['a template language we cannot escape for', (m: any) => (m.templates[0].language = 'perl'), /language must be one of/],
    ['no web rules', (m: any) => delete m.web, /web/],
    ['a sql_mode that breaks escaping', (m: any) => (m.sql.session.sqlMode = 'ANSI_QUOTES,NO_BACKSLASH_ESCAPES'), /NO_BACKSLASH_ESCAPES is not supported/],
    ['a secret longer than 4,096', (m: any) => (m.secrets[0].length = 4097), /length must not be greater than 4096/],
    ['secrets of more than 32,768 characters in all', (m: any) => m.secrets.push(...Array.from({ length: 9 }, (_, i) => ({ name: `key${i}`, length: 4096, alphabet: 'symbols' }))), /characters in all; at most 32768/],
    ['an alphabet we do not know', (m: any) => (m.secrets[0].alphabet = 'emoji'), /alphabet must be one of/],
    ['a credential label with markup', (m: any) => (m.credentials = [{ label: '<b>x</b>', value: 'x' }]), /credentials.label must be/],
    ['a credential declared twice', (m: any) => (m.credentials = [{ label: 'User', value: 'a' }, { label: 'User', value: 'b' }]), /User declared twice/],
    ['routing without a front controller', (m: any) => { delete m.web.frontController; m.web.routing = { pass: 'uri' }; }, /web.routing.*needs web.frontController/],
    ['query routing without its parameter', (m: any) => (m.web.routing = { pass: 'query' }), /must be given when pass is query/],
    ['a routing parameter that is not a name', (m: any) => (m.web.routing = { pass: 'query', param: 'a=b&c' }), /web.routing.param must be a parameter name/],
    ['a deny pattern with a .. segment', (m: any) => (m.web.denyPatterns = ['../*.ini']), /web.denyPatterns must be globs/],
    ['a deny pattern that is a regex', (m: any) => (m.web.denyPatterns = ['(.*)$']), /web.denyPatterns must be globs/],
    ['a front controller that is not an entry point', (m: any) => (m.web.frontController = 'router.php'), /router.php must be one of web.phpEntryPoints/],
    ['a PHP setting with a newline', (m: any) => (m.php = { settings: [{ name: 'memory_limit', value: '1G\nauto_prepend_file=/tmp/x' }] }), /php.settings.value must be printable/],
    ['a PHP version that is not one', (m: any) => (m.php = { minVersion: '8' }), /php.minVersion must be a version/],
    ['a table prefix value that is not an identifier', (m: any) => (m.sql.tablePrefix = { placeholder: 'oc_', value: 'x`; DROP' }), /sql.tablePrefix.value must be/],
    ['a line prefix that is a letter', (m: any) => (m.sql.stripLinePrefixes = ['IN']), /sql.stripLinePrefixes must be/],
    ['a search query that is two statements', (m: any) => (m.search = { query: 'SELECT id, title FROM oc_product; DROP TABLE oc_product' }), /search.query must be one line starting with SELECT/],
    ['a search query with a sphinx.conf comment', (m: any) => (m.search = { query: 'SELECT id, title FROM oc_product # x' }), /search.query must be one line/],
    ['a search query that is not a SELECT', (m: any) => (m.search = { query: 'DELETE FROM oc_product' }), /search.query must be one line starting with SELECT/],
    ['a search query of *', (m: any) => (m.search = { query: 'SELECT * FROM oc_product' }), /search.query.*must name its columns/],
    ['a search attribute that is not a name', (m: any) => (m.search = { query: 'SELECT id, price FROM oc_product', attributes: [{ name: 'price`', type: 'uint' }] }), /search.attributes.name must be/],
    ['a search attribute of an unknown type', (m: any) => (m.search = { query: 'SELECT id, price FROM oc_product', attributes: [{ name: 'price', type: 'money' }] }), /type must be one of/],
    ['a search attribute the query does not select', (m: any) => (m.search = { query: 'SELECT id, title FROM oc_product', attributes: [{ name: 'price', type: 'uint' }] }), /price not among the columns the query selects/],
    ['a search column declared twice', (m: any) => (m.search = { query: 'SELECT id, title FROM oc_product', attributes: [{ name: 'title', type: 'string' }], stringFields: ['title'] }), /title declared twice/],
    ['a search refresh of a minute', (m: any) => (m.search = { query: 'SELECT id, title FROM oc_product', refreshMinutes: 1 }), /refreshMinutes must not be less than 5/],
  ])('refuses %s', async (_what, change, message) => {
    const manifest = plain();
    change(manifest);
    expect(await problems(manifest)).toMatch(message);
  });

  it('accepts what a third-party shop needs: long secrets, credentials, PHP requirements, SQL dialect, deny patterns and routing', async () => {
    const m = plain();
    m.secrets.push({ name: 'encryption_key_2', length: 4096, alphabet: 'base64url' }, { name: 'pin', length: 8, alphabet: 'digits' });
    m.credentials = [{ label: 'Admin user', value: 'admin' }, { label: 'Admin password', value: '{{secret.cookie_key}}' }];
    m.php = { minVersion: '7.4', extensions: ['pdo_mysql', 'Zend OPcache'], settings: [{ name: 'opcache.use_cwd', value: '1' }, { name: 'disable_functions', value: 'exec,passthru' }] };
    m.sql.stripLinePrefixes = ['--', '#'];
    m.sql.tablePrefix = { placeholder: 'oc_', value: 'shop_' };
    m.web.denyPatterns = ['*.twig', '*.tpl', '.*', 'system/storage/*.log'];
    m.web.phpEntryPoints = ['index.php', 'admin/index.php'];
    m.web.routing = { pass: 'query', param: '_route_', notFound: ['*.png', '*.css'] };
    const manifest = await parseManifest(m);
    expect(manifest.web.routing).toEqual({ pass: 'query', param: '_route_', notFound: ['*.png', '*.css'] });
    expect(manifest.secrets!.map((s) => s.length)).toEqual([32, 16, 1024, 4096, 8]);
  });

  it('accepts a search section: the query, attributes and string fields', async () => {
    const m = plain();
    m.search = { query: 'SELECT p.id, p.title, p.body, p.price, UNIX_TIMESTAMP(p.updated_at) AS updated_at FROM oc_products p WHERE p.status = 1', attributes: [{ name: 'price', type: 'uint' }, { name: 'updated_at', type: 'timestamp' }], stringFields: ['title'] };
    expect((await parseManifest(m)).search).toEqual(m.search);
  });

  it('refuses what is not an object', async () => {
    expect(await problems([])).toMatch(/must be a JSON object/);
    expect(await problems('copy everything')).toMatch(/must be a JSON object/);
  });
});
