import { createHash } from 'node:crypto';
import type { SearchAttributeType } from '@app/codebases';

/** Where the engine keeps Sphinx on a search server, inside its home root (a home is named by letters and digits: never `.search`). */
export const SEARCH_DIR_NAME = '.search';

/** A search server's layout: everything below one directory, so the engine's path checks cover it. */
export interface SphinxLayout {
  dir: string;
  /** SphinxQL listeners (`ip:port`): 127.0.0.1 and the server's private IP, where shops reach it. */
  listen: readonly string[];
}

/** One install's index: its source reads the install's own database with its read-only account. */
export interface SearchIndexSpec {
  /** indexName(fsName). */
  name: string;
  host: string | null;
  port: number | null;
  socket: string | null;
  user: string;
  password: string;
  database: string;
  charset: string;
  /** The manifest's query, the table prefix applied. */
  query: string;
  attributes: readonly { name: string; type: SearchAttributeType }[];
  stringFields: readonly string[];
}

/** The index of an install: what its templates already call `sphinx_index` (the fs name is unique forever). */
export const indexName = (fsName: string) => `idx_${fsName}`;
export const INDEX_NAME = /^idx_[a-z][a-z0-9]{0,31}$/;
/** Never an install's (no `idx_` prefix). */
export const PLACEHOLDER_INDEX = 'engine_placeholder';

/** What may go into a value of sphinx.conf: one line, no `#` (a comment there) and no backslash (a continuation). */
const SAFE_VALUE = /^[\x20-\x22\x24-\x5b\x5d-\x7e]*$/;
const NAME = /^[a-z][a-z0-9_]{0,63}$/;
const HOST = /^[A-Za-z0-9.:-]{1,255}$/;
const PATH = /^\/[A-Za-z0-9._\/-]+$/;

function value(what: string, text: string, pattern = SAFE_VALUE): string {
  if (!pattern.test(text)) throw new Error(`refused ${what} for sphinx.conf: ${JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}...` : text)}`);
  return text;
}

export const dataPath = (layout: SphinxLayout, name: string) => `${layout.dir}/data/${name}`;
export const confPath = (layout: SphinxLayout) => `${layout.dir}/sphinx.conf`;
export const pidPath = (layout: SphinxLayout) => `${layout.dir}/searchd.pid`;
/** Which index was built from which block (name → digest of the block and when): what the next run compares with. */
export const statePath = (layout: SphinxLayout) => `${layout.dir}/indexed.json`;

/**
 * One install's source and index, between marker lines that name the index
 * (how the next run finds the blocks of the file it wrote). Every value is
 * checked: nothing can end a line, open a comment or continue a value.
 */
export function renderIndexBlock(layout: SphinxLayout, spec: SearchIndexSpec): string {
  const name = value('index name', spec.name, INDEX_NAME);
  const lines = [
    `# index ${name} begin`,
    `source ${name}_src`,
    '{',
    '  type = mysql',
    ...(spec.socket ? [`  sql_sock = ${value('socket', spec.socket, PATH)}`] : [`  sql_host = ${value('host', spec.host ?? 'localhost', HOST)}`]),
    ...(spec.port && !spec.socket ? [`  sql_port = ${spec.port}`] : []),
    `  sql_user = ${value('user', spec.user, NAME)}`,
    `  sql_pass = ${value('password', spec.password, /^[A-Za-z0-9_-]{16,128}$/)}`,
    `  sql_db = ${value('database', spec.database, NAME)}`,
    `  sql_query_pre = SET NAMES ${value('charset', spec.charset, /^[a-z0-9_]{1,32}$/)}`,
    `  sql_query = ${value('query', spec.query)}`,
    ...spec.attributes.map((a) => `  sql_attr_${a.type} = ${value('attribute', a.name, NAME)}`),
    ...spec.stringFields.map((f) => `  sql_field_string = ${value('string field', f, NAME)}`),
    '}',
    `index ${name}`,
    '{',
    `  source = ${name}_src`,
    `  path = ${value('path', dataPath(layout, name), PATH)}`,
    '}',
    `# index ${name} end`,
  ];
  return `${lines.join('\n')}\n`;
}

/**
 * The whole sphinx.conf of a search server: the indexes (ordered by
 * install) and searchd, every file of it below the layout's directory.
 * `workers = threads` and `seamless_rotate`: `indexer --rotate` builds
 * `.new` files and searchd swaps them in on SIGHUP, re-reading this file
 * (new indexes are served, removed ones dropped) without a restart.
 */
export function renderSphinxConf(layout: SphinxLayout, blocks: ReadonlyMap<string, string>): string {
  value('directory', layout.dir, PATH);
  const names = [...blocks.keys()].sort();
  return [
    '# Written by the shop engine (SearchIndexConfig task) from its catalog: edits here are overwritten.',
    '',
    ...names.map((n) => blocks.get(n)!),
    // searchd refuses to start without an index ("no indexes found"): an empty real-time one keeps a server with no shop index yet startable.
    `index ${PLACEHOLDER_INDEX}`,
    '{',
    '  type = rt',
    `  path = ${dataPath(layout, PLACEHOLDER_INDEX)}`,
    '  rt_field = unused',
    '  rt_attr_uint = unused_attr',
    '}',
    '',
    'indexer',
    '{',
    '  mem_limit = 128M',
    '}',
    '',
    'searchd',
    '{',
    ...layout.listen.map((l) => `  listen = ${value('listen address', l, /^[A-Za-z0-9.]+:\d{1,5}$/)}:mysql41`),
    `  log = ${layout.dir}/log/searchd.log`,
    `  query_log = ${layout.dir}/log/query.log`,
    `  pid_file = ${pidPath(layout)}`,
    `  binlog_path = ${layout.dir}/data`,
    '  workers = threads',
    '  seamless_rotate = 1',
    '  preopen_indexes = 1',
    '  unlink_old = 1',
    '}',
    '',
  ].join('\n');
}

/** The index blocks of a sphinx.conf this module wrote (name → block text, markers included); anything else is ignored. */
export function indexBlocks(conf: string): Map<string, string> {
  const blocks = new Map<string, string>();
  for (const match of conf.matchAll(/^# index (idx_[a-z][a-z0-9]*) begin\n[\s\S]*?^# index \1 end\n/gm)) blocks.set(match[1]!, match[0]);
  return blocks;
}

export const blockDigest = (block: string) => createHash('sha256').update(block).digest('hex').slice(0, 32);

export interface IndexedState {
  /** Digest of the block the index was last built from, and when (ISO). */
  [name: string]: { digest: string; at: string };
}

export function parseIndexedState(text: string): IndexedState {
  try {
    const parsed = JSON.parse(text) as unknown;
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return {};
    const state: IndexedState = {};
    for (const [name, entry] of Object.entries(parsed as Record<string, unknown>)) {
      const e = entry as { digest?: unknown; at?: unknown };
      if (INDEX_NAME.test(name) && typeof e?.digest === 'string' && typeof e.at === 'string') state[name] = { digest: e.digest, at: e.at };
    }
    return state;
  } catch {
    // Unreadable: every index is built again, which is always safe.
    return {};
  }
}

/**
 * Which indexes one indexer run built (`indexing index 'x'...` followed by
 * no `ERROR: index 'x'` line): indexer goes on after an index fails and
 * exits 1, so the outcome is read per index.
 */
export function indexerOutcome(stdout: string, names: readonly string[]): { built: string[]; failed: Map<string, string> } {
  const failed = new Map<string, string>();
  for (const match of stdout.matchAll(/^(?:ERROR|FATAL): index '(idx_[a-z0-9]+)': (.*)$/gm)) if (!failed.has(match[1]!)) failed.set(match[1]!, match[2]!.trim());
  const started = new Set([...stdout.matchAll(/^indexing index '(idx_[a-z0-9]+)'\.\.\.$/gm)].map((m) => m[1]!));
  // Nothing of an index's own: the run stopped before it (a config it could not read...), whose first error says why.
  const general = /^(?:FATAL|ERROR): (?!index ')(.*)$/m.exec(stdout)?.[1]?.trim();
  for (const name of names) if (!started.has(name) && !failed.has(name)) failed.set(name, general ?? 'not indexed (indexer said nothing of it)');
  return { built: names.filter((n) => !failed.has(n)), failed };
}
