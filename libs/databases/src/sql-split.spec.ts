import { splitSql } from './sql-split.js';

describe('splitSql', () => {
  it('splits on semicolons outside strings and comments, with the line each statement starts on', () => {
    const sql = [
      "-- a comment; with a semicolon",
      'CREATE TABLE settings (name VARCHAR(64) PRIMARY KEY, value TEXT NOT NULL);',
      '/* a block comment;',
      '   over lines */',
      "INSERT INTO settings VALUES ('greeting', 'Welcome; enjoy');",
      "INSERT INTO settings VALUES ('quote', 'it''s; \\'fine\\'');",
      '',
      'SELECT 1',
    ].join('\n');
    expect(splitSql(sql)).toEqual([
      { text: 'CREATE TABLE settings (name VARCHAR(64) PRIMARY KEY, value TEXT NOT NULL)', line: 2 },
      { text: "INSERT INTO settings VALUES ('greeting', 'Welcome; enjoy')", line: 5 },
      { text: "INSERT INTO settings VALUES ('quote', 'it''s; \\'fine\\'')", line: 6 },
      { text: 'SELECT 1', line: 8 },
    ]);
  });

  it('keeps a routine whole under DELIMITER', () => {
    const sql = ['DELIMITER //', 'CREATE PROCEDURE p() BEGIN SELECT 1; SELECT 2; END //', 'DELIMITER ;', 'CALL p();'].join('\n');
    expect(splitSql(sql).map((s) => s.text)).toEqual(['CREATE PROCEDURE p() BEGIN SELECT 1; SELECT 2; END', 'CALL p()']);
  });

  it('finds nothing in a file of comments', () => {
    expect(splitSql('-- nothing\n/* at all; */\n')).toEqual([]);
  });
});
