import type { SqlStatement } from './sql-split.js';

/**
 * A dump's table creations that may run at once, each on its own
 * connection, before the rest of the file; and the rest, in the file's
 * order. Creating a table costs a dozen disk syncs (DDL log, .frm, .ibd,
 * redo log), so a dump of 130 tables spends most of its time there; on
 * several connections the server overlaps them.
 *
 * Only what cannot change the outcome is moved. From the file's start, a
 * run of: session `SET`s (before the first table; each connection runs them
 * too), plain `CREATE TABLE x (...)`, alone or right after `DROP TABLE IF
 * EXISTS x` (the pair moves together: an x that existed before the file is
 * dropped and made again either way; nothing else in the run touches x), and
 * `INSERT` into a table the file created before. A table made by `SELECT` or `LIKE`, with a foreign key, temporary,
 * or made twice, and the first statement of any other kind end the run:
 * from there on everything stays in the file's order. `DROP TABLE IF EXISTS`
 * without its `CREATE` right after ends it too.
 */
export interface ParallelPlan {
  /** Session SETs from the top of the file: run first on every connection. */
  preamble: SqlStatement[];
  /** Per table: its CREATE (after its DROP, when the file drops it first), in the file's order. */
  tables: SqlStatement[][];
  /** Everything else, in the file's order (the preamble's SETs included). */
  rest: SqlStatement[];
}

const IDENT = '(?:`((?:[^`]|``)+)`|([A-Za-z0-9_$]+))';
const DROP_ONE = new RegExp(`^DROP\\s+TABLE\\s+IF\\s+EXISTS\\s+${IDENT}\\s*$`, 'i');
const CREATE = new RegExp(`^CREATE\\s+TABLE\\s+(?:IF\\s+NOT\\s+EXISTS\\s+)?${IDENT}\\s*\\(`, 'i');
const INSERT = new RegExp(`^(?:INSERT|REPLACE)(?:\\s+(?:LOW_PRIORITY|DELAYED|HIGH_PRIORITY|IGNORE))*\\s+(?:INTO\\s+)?${IDENT}[\\s(]`, 'i');
/** A session setting: `SET x = ...` or mysqldump's `/*!40101 SET ... *\/`; never a SET of a variable a later statement reads (`@x`) that we could not repeat. */
const SET = /^(?:\/\*!\d*\s*)?SET\s+(?!@(?!@))[\s\S]*$/i;

const nameOf = (m: RegExpExecArray): string => (m[1] !== undefined ? m[1].replace(/``/g, '`') : m[2]!).toLowerCase();

/** A plain table definition: no SELECT, LIKE, foreign key or partition that names another table. */
function plainCreate(text: string): boolean {
  if (/^CREATE\s+TEMPORARY/i.test(text)) return false;
  // Outside string literals (a DEFAULT or COMMENT may say anything).
  const code = text.replace(/'(?:[^'\\]|\\.|'')*'/gs, "''").replace(/"(?:[^"\\]|\\.|"")*"/gs, '""');
  return !/\b(REFERENCES|SELECT|LIKE)\b/i.test(code);
}

/** The plan of a file's statements, or null when nothing can run at once (fewer than two tables to make). */
export function planParallelTables(statements: readonly SqlStatement[]): ParallelPlan | null {
  const preamble: SqlStatement[] = [];
  const tables: SqlStatement[][] = [];
  const moved = new Set<number>();
  const created = new Set<string>();
  let i = 0;
  for (; i < statements.length; i++) {
    const text = statements[i]!.text;
    if (SET.test(text)) {
      if (tables.length > 0) break;
      preamble.push(statements[i]!);
      continue;
    }
    const drop = DROP_ONE.exec(text);
    if (drop) {
      const next = statements[i + 1];
      const create = next ? CREATE.exec(next.text) : null;
      const name = nameOf(drop);
      if (!next || !create || nameOf(create) !== name || !plainCreate(next.text) || created.has(name)) break;
      created.add(name);
      tables.push([statements[i]!, next]);
      moved.add(i).add(i + 1);
      i++;
      continue;
    }
    const create = CREATE.exec(text);
    if (create) {
      const name = nameOf(create);
      // Nothing before it in the run touches it (only other tables are made or filled there): made earlier or in its place, it is the same table.
      if (!plainCreate(text) || created.has(name)) break;
      created.add(name);
      tables.push([statements[i]!]);
      moved.add(i);
      continue;
    }
    const insert = INSERT.exec(text);
    if (insert && created.has(nameOf(insert))) continue;
    break;
  }
  // A table the file makes again further on would be made twice: nothing moves.
  for (let j = i; j < statements.length; j++) {
    const create = CREATE.exec(statements[j]!.text);
    if (create && created.has(nameOf(create))) return null;
  }
  if (tables.length < 2) return null;
  return { preamble, tables, rest: statements.filter((_, k) => !moved.has(k)) };
}
