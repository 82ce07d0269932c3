/**
 * An install dump shaped like the ones typical PHP shops ship (OpenCart's
 * is about 130 tables and 400 statements): `-- ----` rulers, an `oc_`
 * table prefix, CREATE TABLE with keys and indexes (InnoDB, utf8mb4), and
 * multi-row INSERTs of demo data with quotes, backslashes, semicolons and
 * non-ASCII text. Deterministic: the same options give the same text.
 */
export interface LargeDumpOptions {
  tables?: number;
  inserts?: number;
  rowsPerInsert?: number;
  /** The table-prefix placeholder the dump carries. */
  prefix?: string;
}

export interface LargeDump {
  sql: string;
  /** Statements in the dump (SET NAMES, CREATE TABLE, INSERT). */
  statements: number;
  /** Table name (with the dump's prefix) → rows inserted into it. */
  rows: Map<string, number>;
}

const WORDS = ['Apple', 'Cinema', "Men's", 'Größe', 'café', 'Blue; "sky"', 'back\\slash', 'naïve', '🛒 cart', 'MacBook', 'iPhone', 'Canon EOS', 'HTC Touch', "O'Reilly", 'Palm Treo', 'Samsung', 'Sony VAIO', 'Nikon D300'];

export function largeDump(options: LargeDumpOptions = {}): LargeDump {
  const tables = options.tables ?? 130;
  const inserts = options.inserts ?? 270;
  const perInsert = options.rowsPerInsert ?? 8;
  const prefix = options.prefix ?? 'oc_';
  let seed = 14;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  const text = (n: number) => Array.from({ length: n }, () => WORDS[Math.floor(random() * WORDS.length)]).join(' ');
  const quote = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

  const lines: string[] = ['-- ----------------------------', '-- Shop demo install dump', '-- ----------------------------', '', 'SET NAMES utf8mb4;', ''];
  const rows = new Map<string, number>();
  for (let t = 0; t < tables; t++) {
    const name = `${prefix}table_${String(t).padStart(3, '0')}`;
    rows.set(name, 0);
    lines.push(
      '-- ----------------------------',
      `-- Table structure for ${name}`,
      '-- ----------------------------',
      `CREATE TABLE \`${name}\` (`,
      `  \`${name.slice(prefix.length)}_id\` int(11) NOT NULL AUTO_INCREMENT,`,
      '  `store_id` int(11) NOT NULL DEFAULT 0,',
      '  `language_id` int(11) NOT NULL DEFAULT 1,',
      '  `code` varchar(64) NOT NULL,',
      '  `name` varchar(255) NOT NULL,',
      '  `description` text NOT NULL,',
      '  `price` decimal(15,4) NOT NULL DEFAULT 0.0000,',
      '  `status` tinyint(1) NOT NULL DEFAULT 1,',
      '  `sort_order` int(3) NOT NULL DEFAULT 0,',
      '  `date_added` datetime NOT NULL,',
      `  PRIMARY KEY (\`${name.slice(prefix.length)}_id\`),`,
      '  UNIQUE KEY `code` (`store_id`, `code`),',
      '  KEY `name` (`name`(32)),',
      '  KEY `status_sort` (`status`, `sort_order`)',
      ') ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;',
      '',
    );
  }
  lines.push('-- ----------------------------', '-- Demo data', '-- ----------------------------');
  for (let i = 0; i < inserts; i++) {
    // Spread over the tables, some getting several INSERTs as a real dump's catalog tables do.
    const name = `${prefix}table_${String(Math.floor(random() * tables)).padStart(3, '0')}`;
    const first = rows.get(name)!;
    const values = Array.from({ length: perInsert }, (_, r) => {
      const n = first + r;
      const date = `2024-${String((n % 12) + 1).padStart(2, '0')}-${String((n % 28) + 1).padStart(2, '0')} 10:00:00`;
      return `(${n + 1}, 0, 1, ${quote(`code-${n}`)}, ${quote(text(3))}, ${quote(`${text(12)}; -- ${text(4)}`)}, ${(random() * 1000).toFixed(4)}, 1, ${n % 10}, '${date}')`;
    });
    rows.set(name, first + perInsert);
    lines.push(`INSERT INTO \`${name}\` (\`${name.slice(prefix.length)}_id\`, \`store_id\`, \`language_id\`, \`code\`, \`name\`, \`description\`, \`price\`, \`status\`, \`sort_order\`, \`date_added\`) VALUES`, `${values.join(',\n')};`);
  }
  lines.push('');
  return { sql: lines.join('\n'), statements: 1 + tables + inserts, rows };
}
