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
    // What is left of a file that ends in comments is no statement; `/*!NNNNN ... */` is no comment to MySQL (mysqldump's SETs and triggers): kept.
    .filter((s) => s.text.replace(/\/\*(?!!)[\s\S]*?\*\//g, '').replace(/(--|#)[^\n]*/g, '').trim() !== '');
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

/** A-Z a-z 0-9 _ $ and anything past ASCII: what an unquoted MySQL identifier is made of. */
function isWordChar(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 95 || c === 36 || c >= 0x80;
}

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

  const n = sql.length;
  // Copied in runs: only what is dropped or replaced breaks a run (a dump is often a megabyte).
  const pieces: string[] = [];
  let copied = 0;
  /** Inside `/*! ... *\/`: code, until the comment's end. */
  let executable = false;
  let lineStart = true;
  /** An identifier starts at i: the placeholder it begins with is replaced. */
  const identifierAt = (i: number): void => {
    if (table && sql.startsWith(table.placeholder, i)) {
      pieces.push(sql.slice(copied, i), table.value);
      copied = i + table.placeholder.length;
    }
  };
  const endOfLine = (i: number): number => {
    const end = sql.indexOf('\n', i);
    return end === -1 ? n : end;
  };
  /** Past a string literal starting at i (backslash escapes; a doubled quote is two adjacent literals, the same to us). */
  const pastString = (i: number, quote: number): number => {
    for (let j = i + 1; j < n; j++) {
      const c = sql.charCodeAt(j);
      if (c === 92) j++;
      else if (c === quote) return j + 1;
    }
    return n;
  };
  /** Past a quoted identifier whose first character is at i (a doubled quote stands for itself). */
  const pastIdentifier = (i: number, quote: number): number => {
    for (let j = i; j < n; j++) {
      if (sql.charCodeAt(j) !== quote) continue;
      if (sql.charCodeAt(j + 1) !== quote) return j + 1;
      j++;
    }
    return n;
  };

  let i = 0;
  while (i < n) {
    if (lineStart) {
      lineStart = false;
      let first = i;
      while (sql.charCodeAt(first) === 32 || sql.charCodeAt(first) === 9) first++;
      if (prefixes.some((p) => sql.startsWith(p, first))) {
        const end = endOfLine(first);
        pieces.push(sql.slice(copied, i));
        copied = end;
        i = end;
        continue;
      }
    }
    const c = sql.charCodeAt(i);
    const next = sql.charCodeAt(i + 1);
    if (c === 10) {
      lineStart = true;
      i++;
    } else if (c === 39 || (c === 34 && !ansiQuotes)) {
      i = pastString(i, c);
    } else if (c === 96 || c === 34) {
      identifierAt(i + 1);
      i = pastIdentifier(i + 1, c);
    } else if (c === 35 || (c === 45 && next === 45 && (i + 2 >= n || /\s/.test(sql[i + 2]!)))) {
      i = endOfLine(i);
    } else if (c === 47 && next === 42) {
      const marker = executable ? null : /^\/\*M?!\d*/.exec(sql.slice(i, i + 12));
      if (marker) {
        executable = true;
        i += marker[0].length;
      } else {
        const end = sql.indexOf('*/', i + 2);
        i = end === -1 ? n : end + 2;
      }
    } else if (c === 42 && next === 47 && executable) {
      executable = false;
      i += 2;
    } else if (c === 64) {
      // `@var` and `@@var` are variables, not tables.
      i++;
      if (sql.charCodeAt(i) === 64) i++;
      while (i < n && isWordChar(sql.charCodeAt(i))) i++;
    } else if (isWordChar(c)) {
      // A whole word at once: a placeholder counts only at its start (and a word starting with a digit is a number).
      if (c < 48 || c > 57) identifierAt(i);
      i++;
      while (i < n && isWordChar(sql.charCodeAt(i))) i++;
    } else {
      i++;
    }
  }
  pieces.push(sql.slice(copied));
  return pieces.join('');
}
