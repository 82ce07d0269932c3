import { prepareSql, splitSql } from './sql-split.js';

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

  it("keeps mysqldump's executable comments, which MySQL runs", () => {
    const sql = '/*!40101 SET NAMES utf8mb4 */;\n/* a comment */\n/*!50003 CREATE*/ /*!50003 TRIGGER t AFTER INSERT ON a FOR EACH ROW SET @n = 1 */;\n';
    const texts = splitSql(sql).map((s) => s.text);
    expect(texts).toHaveLength(2);
    expect(texts[0]).toBe('/*!40101 SET NAMES utf8mb4 */');
    expect(texts[1]).toMatch(/\/\*!50003 CREATE\*\/ \/\*!50003 TRIGGER t AFTER INSERT ON a FOR EACH ROW SET @n = 1 \*\/$/);
  });
});

describe('prepareSql', () => {
  const opencart = { stripLinePrefixes: ['--', '#'], tablePrefix: { placeholder: 'oc_', value: 'shop_' } };

  it("drops the lines the shop's installer drops, as empty lines, so statements keep their lines", () => {
    const sql = [
      '-- ----------------------------',
      '------------------------------',
      '  # Table structure for oc_user',
      'CREATE TABLE `oc_user` (',
      '  `user_id` int(11) NOT NULL, -- the key',
      '  PRIMARY KEY (`user_id`)',
      ');',
      '',
      'INSERT INTO oc_user VALUES (1);',
    ].join('\n');
    const prepared = prepareSql(sql, opencart);
    expect(prepared.split('\n')).toHaveLength(9);
    expect(prepared).toBe(['', '', '', 'CREATE TABLE `shop_user` (', '  `user_id` int(11) NOT NULL, -- the key', '  PRIMARY KEY (`user_id`)', ');', '', 'INSERT INTO shop_user VALUES (1);'].join('\n'));
    expect(splitSql(prepared).map((s) => s.line)).toEqual([4, 9]);
  });

  it('keeps a line inside a string literal, even one that looks like a comment', () => {
    const sql = "INSERT INTO oc_setting VALUES ('footer', 'line one\n-- not a comment\n# nor this\n');\n-- a comment\nSELECT 1;";
    expect(prepareSql(sql, opencart)).toBe("INSERT INTO shop_setting VALUES ('footer', 'line one\n-- not a comment\n# nor this\n');\n\nSELECT 1;");
  });

  it('replaces the placeholder at the start of identifiers only: never in strings, comments, variables or mid-word', () => {
    const sql = [
      "INSERT INTO `oc_product` (name, note) VALUES ('oc_product', \"oc_x \\\" oc_y\", 'it''s oc_z', 'a\\'oc_w');",
      '/* oc_a block oc_b */ SELECT oc_c.id, db.oc_d.x, `oc_e``oc_f`, xoc_g, @oc_h, @@oc_i, 12oc_j FROM oc_c; # oc_k',
      'DROP TABLE IF EXISTS oc_l; -- oc_m',
      "--oc_n is no comment to MySQL",
    ].join('\n');
    expect(prepareSql(sql, { tablePrefix: { placeholder: 'oc_', value: 'p1_' } })).toBe(
      [
        "INSERT INTO `p1_product` (name, note) VALUES ('oc_product', \"oc_x \\\" oc_y\", 'it''s oc_z', 'a\\'oc_w');",
        '/* oc_a block oc_b */ SELECT p1_c.id, db.p1_d.x, `p1_e``oc_f`, xoc_g, @oc_h, @@oc_i, 12oc_j FROM p1_c; # oc_k',
        'DROP TABLE IF EXISTS p1_l; -- oc_m',
        '--p1_n is no comment to MySQL',
      ].join('\n'),
    );
  });

  it('treats the body of an executable comment as SQL, as mysqldump writes triggers', () => {
    const sql = '/*!50003 CREATE*/ /*!50003 TRIGGER oc_t AFTER INSERT ON `oc_order` FOR EACH ROW UPDATE oc_stats SET n = n + 1 */;;';
    expect(prepareSql(sql, opencart)).toBe('/*!50003 CREATE*/ /*!50003 TRIGGER shop_t AFTER INSERT ON `shop_order` FOR EACH ROW UPDATE shop_stats SET n = n + 1 */;;');
  });

  it('replaces inside "..." when the session mode makes it an identifier quote', () => {
    expect(prepareSql('SELECT "oc_a" FROM "oc_b"', { tablePrefix: { placeholder: 'oc_', value: 's_' }, session: { sqlMode: 'ANSI,STRICT_TRANS_TABLES' } })).toBe('SELECT "s_a" FROM "s_b"');
    expect(prepareSql('SELECT "oc_a"', { tablePrefix: { placeholder: 'oc_', value: 's_' }, session: { sqlMode: 'STRICT_TRANS_TABLES' } })).toBe('SELECT "oc_a"');
  });

  it('leaves a dump alone without options, and refuses a prefix that is no identifier', () => {
    expect(prepareSql('-- x\nSELECT 1;')).toBe('-- x\nSELECT 1;');
    expect(() => prepareSql('SELECT 1', { tablePrefix: { placeholder: 'oc_', value: 'x`; DROP' } })).toThrow(/refused table prefix/);
  });
});
