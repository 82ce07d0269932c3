import { indexBlocks, indexerOutcome, parseIndexedState, renderIndexBlock, renderSphinxConf, type SearchIndexSpec } from './sphinx-conf.js';
import { searchReader } from './search-reader.js';

const layout = { dir: '/srv/home/.search', listen: ['127.0.0.1:9306'] };
const spec = (over: Partial<SearchIndexSpec> = {}): SearchIndexSpec => ({
  name: 'idx_shoptwelve', host: '127.0.0.1', port: 3306, socket: null, user: 'shop12_ro', password: 'AbCdEfGhIjKlMnOpQrStUv0123456789', database: 'shop_shop12', charset: 'utf8mb4',
  query: 'SELECT id, title, price FROM shop_products', attributes: [{ name: 'price', type: 'uint' }], stringFields: ['title'], ...over,
});

describe('sphinx.conf rendering', () => {
  it('renders a source and an index per install between markers, and finds the blocks again', () => {
    const block = renderIndexBlock(layout, spec());
    expect(block).toContain('source idx_shoptwelve_src\n{\n  type = mysql\n  sql_host = 127.0.0.1\n  sql_port = 3306\n');
    expect(block).toContain('  sql_attr_uint = price\n  sql_field_string = title\n');
    expect(block).toContain('  path = /srv/home/.search/data/idx_shoptwelve\n');
    const other = renderIndexBlock(layout, spec({ name: 'idx_shopthree', socket: '/run/mysqld/mysqld.sock' }));
    expect(other).toContain('sql_sock = /run/mysqld/mysqld.sock');
    expect(other).not.toContain('sql_host');
    const conf = renderSphinxConf(layout, new Map([['idx_shoptwelve', block], ['idx_shopthree', other]]));
    // Ordered by name (the same file for the same catalog), then searchd with its files below the directory.
    expect(conf.indexOf('idx_shopthree_src')).toBeLessThan(conf.indexOf('idx_shoptwelve_src'));
    expect(conf).toContain('listen = 127.0.0.1:9306:mysql41\n  log = /srv/home/.search/log/searchd.log');
    expect(conf).toContain('pid_file = /srv/home/.search/searchd.pid');
    expect(renderSphinxConf(layout, new Map())).toContain('index engine_placeholder\n{\n  type = rt\n');
    expect([...indexBlocks(conf)]).toEqual([['idx_shopthree', other], ['idx_shoptwelve', block]]);
  });

  it.each([
    ['a query with a comment sign', { query: 'SELECT id FROM t # x' }, /refused query/],
    ['a query on two lines', { query: 'SELECT id\nFROM t' }, /refused query/],
    ['a query continued by a backslash', { query: 'SELECT id FROM t \\' }, /refused query/],
    ['an index name that is not an install\'s', { name: 'idx_a b' }, /refused index name/],
    ['a user that is not a name', { user: 'a b' }, /refused user/],
    ['a password with a comment sign', { password: 'abcdefgh#ijklmnopq' }, /refused password/],
    ['a host with a newline', { host: 'h\nsql_query = x' }, /refused host/],
  ])('refuses %s', (_what, over, message) => {
    expect(() => renderIndexBlock(layout, spec(over as Partial<SearchIndexSpec>))).toThrow(message);
  });

  it('reads the outcome of one indexer run per index (it goes on after a failure and exits 1)', () => {
    const stdout = [
      "using config file '/srv/home/.search/sphinx.conf'...",
      "indexing index 'idx_three'...",
      "ERROR: index 'idx_three': sql_query: Table 'shop_x.shop_products' doesn't exist (DSN=mysql://x_ro:***@127.0.0.1:3306/shop_x).",
      'total 0 docs, 0 bytes',
      "indexing index 'idx_twelve'...",
      'collected 2 docs, 0.0 MB',
    ].join('\n');
    const outcome = indexerOutcome(stdout, ['idx_three', 'idx_twelve', 'idx_forty']);
    expect(outcome.built).toEqual(['idx_twelve']);
    expect([...outcome.failed.keys()]).toEqual(['idx_three', 'idx_forty']);
    expect(outcome.failed.get('idx_three')).toMatch(/doesn't exist/);
    const fatal = indexerOutcome("using config file 'x'...\nFATAL: failed to parse config file 'x': unknown key name 'y'", ['idx_one']);
    expect(fatal.failed.get('idx_one')).toBe("failed to parse config file 'x': unknown key name 'y'");
  });

  it('reads its state file, and starts afresh from one it cannot read', () => {
    expect(parseIndexedState('{"idx_one":{"digest":"ab","at":"2026-12-03T10:00:00.000Z"},"x":{}}')).toEqual({ idx_one: { digest: 'ab', at: '2026-12-03T10:00:00.000Z' } });
    expect(parseIndexedState('not json')).toEqual({});
  });

  it('derives the read-only account from the install: stable, its own name, a password that fits sphinx.conf', () => {
    const a = searchReader({ dbUser: 'shopone', dbName: 'shop_shopone' }, 'install-password');
    expect(a).toEqual(searchReader({ dbUser: 'shopone', dbName: 'shop_shopone' }, 'install-password'));
    expect(a.user).toBe('shopone_ro');
    expect(a.password).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(searchReader({ dbUser: 'shopone', dbName: 'shop_shopone' }, 'another').password).not.toBe(a.password);
    expect(searchReader({ dbUser: 'a'.repeat(32), dbName: 'shop_a' }, 'p').user).toMatch(/^ro_[0-9a-f]{24}$/);
  });
});
