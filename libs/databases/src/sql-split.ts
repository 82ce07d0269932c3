import { mysqlSplitterOptions, splitQuery } from 'dbgate-query-splitter';

interface RichItem {
  text: string;
  start: { line: number };
  trimStart?: { line: number };
}

export interface SqlStatement {
  text: string;
  /** 1-based line of the statement's first character in its file. */
  line: number;
}

/**
 * Splits an SQL file into statements with MySQL's rules (dbgate's splitter:
 * `--`, `#` and block comments, quoted semicolons, `DELIMITER` for
 * routines), each with the line it starts on, so an error can name the file,
 * the line and the statement.
 */
export function splitSql(sql: string): SqlStatement[] {
  const items = splitQuery(sql, { ...mysqlSplitterOptions, returnRichInfo: true, ignoreComments: true }) as RichItem[];
  return items
    .map((item) => ({ text: item.text.trim(), line: (item.trimStart ?? item.start).line + 1 }))
    // What is left of a file that ends in comments is no statement.
    .filter((s) => s.text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(--|#)[^\n]*/g, '').trim() !== '');
}

/** How a shop's dump is read as its own installer reads it (the manifest's `sql` section has this shape). */
export interface SqlPreparation {
  /** Lines whose first non-blank characters are one of these are dropped (kept as empty lines, so line numbers hold). */
  stripLinePrefixes?: readonly string[];
  /** The placeholder at the start of an identifier (bare or in backticks), outside strings and comments, becomes the value. */
  tablePrefix?: { placeholder: string; value: string };
  /** ANSI_QUOTES (or ANSI) in the session's mode makes "..." an identifier, whose prefix is then replaced too. */
  session?: { sqlMode?: string };
}

const WORD_CHAR = /[A-Za-z0-9_$\u0080-\uffff]/;

/**
 * Prepares a dump as the manifest says before it is split: drops the lines
 * the shop's installer drops (OpenCart's `-- ----` rulers are no comment to
 * MySQL, which wants a blank after `--`) and replaces the table-prefix
 * placeholder at the start of identifiers. One scan with MySQL's lexical
 * rules: string literals ('...', "..." with backslash escapes and doubled
 * quotes), `--`, `#` and block comments are left as they are, while the
 * body of an executable comment (`/*!40101 ... *\/`, as mysqldump writes
 * triggers) is SQL and is treated as such. A line inside a string literal
 * is data and is never dropped. Newlines are kept, so a statement's line
 * (and an error's) is the line in the shop's file.
 */
export function prepareSql(sql: string, options: SqlPreparation = {}): string {
  const prefixes = (options.stripLinePrefixes ?? []).filter((p) => p !== '');
  const table = options.tablePrefix;
  if (table && !/^[A-Za-z][A-Za-z0-9_]*$/.test(table.placeholder)) throw new Error(`refused table prefix placeholder ${JSON.stringify(table.placeholder)}`);
  if (table && !/^[A-Za-z0-9_]*$/.test(table.value)) throw new Error(`refused table prefix ${JSON.stringify(table.value)}`);
  const ansiQuotes = (options.session?.sqlMode ?? '').split(',').some((m) => m === 'ANSI_QUOTES' || m === 'ANSI');
  if (prefixes.length === 0 && !table) return sql;

  const out: string[] = [];
  let state: 'code' | 'quote' | 'identifier' | 'block' | 'line' = 'code';
  let quote = '';
  /** Inside `/*! ... *\/`: code, until the comment's end. */
  let executable = false;
  let i = 0;
  let lineStart = true;
  /** An identifier starts at i: replace the placeholder it begins with. */
  const identifierAt = (): void => {
    if (table && sql.startsWith(table.placeholder, i)) {
      out.push(table.value);
      i += table.placeholder.length;
    }
  };
  while (i < sql.length) {
    if (lineStart) {
      lineStart = false;
      if (state === 'code') {
        let first = i;
        while (sql[first] === ' ' || sql[first] === '\t') first++;
        if (prefixes.some((p) => sql.startsWith(p, first))) {
          const end = sql.indexOf('\n', first);
          i = end === -1 ? sql.length : end;
          continue;
        }
      }
    }
    const c = sql[i]!;
    if (c === '\n') {
      lineStart = true;
      if (state === 'line') state = 'code';
      out.push(c);
      i++;
      continue;
    }
    switch (state) {
      case 'code': {
        const next = sql[i + 1];
        if (c === "'" || (c === '"' && !ansiQuotes)) {
          state = 'quote';
          quote = c;
        } else if (c === '`' || c === '"') {
          state = 'identifier';
          quote = c;
          out.push(c);
          i++;
          identifierAt();
          continue;
        } else if (c === '#' || (c === '-' && next === '-' && (i + 2 >= sql.length || /\s/.test(sql[i + 2]!)))) {
          state = 'line';
        } else if (c === '/' && next === '*') {
          const marker = /^\/\*M?!\d*/.exec(sql.slice(i, i + 12));
          if (marker && !executable) {
            executable = true;
            out.push(marker[0]);
            i += marker[0].length;
            continue;
          }
          state = 'block';
          out.push('/*');
          i += 2;
          continue;
        } else if (c === '*' && next === '/' && executable) {
          executable = false;
          out.push('*/');
          i += 2;
          continue;
        } else if (c === '@' || WORD_CHAR.test(c)) {
          // A whole word at once: a placeholder only counts at its start. `@var` and `@@var` are variables, not tables.
          let end = i + 1;
          while (end < sql.length && (WORD_CHAR.test(sql[end]!) || (c === '@' && sql[end] === '@' && end === i + 1))) end++;
          if (c !== '@' && !/[0-9]/.test(c)) identifierAt();
          out.push(sql.slice(i, end));
          i = end;
          continue;
        }
        break;
      }
      case 'quote':
        if (c === '\\' && i + 1 < sql.length && sql[i + 1] !== '\n') {
          out.push(sql.slice(i, i + 2));
          i += 2;
          continue;
        }
        if (c === quote) {
          if (sql[i + 1] === quote) {
            out.push(c, c);
            i += 2;
            continue;
          }
          state = 'code';
        }
        break;
      case 'identifier':
        if (c === quote) {
          if (sql[i + 1] === quote) {
            out.push(c, c);
            i += 2;
            continue;
          }
          state = 'code';
        }
        break;
      case 'block':
        if (c === '*' && sql[i + 1] === '/') {
          state = 'code';
          out.push('*/');
          i += 2;
          continue;
        }
        break;
      case 'line':
        break;
    }
    out.push(c);
    i++;
  }
  return out.join('');
}
