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
