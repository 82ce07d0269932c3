import { planParallelTables } from './sql-parallel.js';
import { splitSql } from './sql-split.js';

const texts = (list: { text: string }[][] | { text: string }[]) => JSON.parse(JSON.stringify(list, (k, v) => (k === 'line' ? undefined : v)));
const table = (name: string) => `DROP TABLE IF EXISTS \`${name}\`;\nCREATE TABLE \`${name}\` (id int PRIMARY KEY, note varchar(32) DEFAULT 'a; b') ENGINE=InnoDB;\n`;

describe('planParallelTables', () => {
  it("moves a dump's DROP/CREATE pairs out, keeps the top SETs for every connection and the rest in order", () => {
    const sql = ['SET NAMES utf8mb4;', "/*!40101 SET SQL_MODE='' */;", table('a'), 'INSERT INTO `a` VALUES (1, "x");', table('b'), 'INSERT IGNORE INTO b (id) VALUES (2);', table('c'), 'CREATE TRIGGER t BEFORE INSERT ON a FOR EACH ROW SET NEW.note = "t";', 'SET FOREIGN_KEY_CHECKS = 1;'].join('\n');
    const plan = planParallelTables(splitSql(sql))!;
    expect(texts(plan.preamble)).toEqual([{ text: 'SET NAMES utf8mb4' }, { text: "/*!40101 SET SQL_MODE='' */" }]);
    expect(plan.tables.map((pair) => pair.map((s) => s.text.split(' ').slice(0, 5).join(' ')))).toEqual([
      ['DROP TABLE IF EXISTS `a`', 'CREATE TABLE `a` (id int'],
      ['DROP TABLE IF EXISTS `b`', 'CREATE TABLE `b` (id int'],
      ['DROP TABLE IF EXISTS `c`', 'CREATE TABLE `c` (id int'],
    ]);
    expect(plan.rest.map((s) => s.text.slice(0, 20))).toEqual(['SET NAMES utf8mb4', "/*!40101 SET SQL_MOD", 'INSERT INTO `a` VALU', 'INSERT IGNORE INTO b', 'CREATE TRIGGER t BEF', 'SET FOREIGN_KEY_CHEC']);
    // Lines stay the file's, for errors.
    expect(plan.tables[1]![1]!.line).toBe(splitSql(sql).find((s) => s.text.startsWith('CREATE TABLE `b`'))!.line);
  });

  it('stops at the first statement it cannot move around, and keeps the order from there', () => {
    const sql = [table('a'), table('b'), 'ALTER TABLE a ADD COLUMN x int;', table('c'), table('d')].join('\n');
    const plan = planParallelTables(splitSql(sql))!;
    expect(plan.tables.map((p) => p[1]!.text.slice(0, 16))).toEqual(['CREATE TABLE `a`', 'CREATE TABLE `b`']);
    expect(plan.rest.map((s) => s.text.slice(0, 22))).toEqual(['ALTER TABLE a ADD COLU', 'DROP TABLE IF EXISTS `', 'CREATE TABLE `c` (id i', 'DROP TABLE IF EXISTS `', 'CREATE TABLE `d` (id i']);
  });

  it.each([
    ['a foreign key', `${table('a')}DROP TABLE IF EXISTS b;\nCREATE TABLE b (id int, a_id int REFERENCES a(id));\n${table('c')}`, 1],
    ['a table made from a SELECT', `${table('a')}DROP TABLE IF EXISTS b;\nCREATE TABLE b (id int) SELECT id FROM a;\n${table('c')}`, 1],
    ['a table made LIKE another', `${table('a')}DROP TABLE IF EXISTS b;\nCREATE TABLE b (LIKE a);\n${table('c')}`, 1],
    ['a DROP without its CREATE', `${table('a')}DROP TABLE IF EXISTS b;\nINSERT INTO a VALUES (1, 'x');\n${table('c')}`, 1],
    ['a DROP of several tables', `${table('a')}DROP TABLE IF EXISTS b, c;\n${table('c')}`, 1],
    ['an INSERT into a table not made yet', `${table('a')}INSERT INTO c VALUES (1, 'x');\n${table('b')}${table('c')}`, 1],
    ['a user variable set', `SET @saved = @@character_set_client;\n${table('a')}${table('b')}`, 0],
    ['a SET between tables', `${table('a')}SET sql_mode = 'ANSI';\n${table('b')}${table('c')}`, 1],
  ])('moves nothing past %s', (_what, sql, moved) => {
    const plan = planParallelTables(splitSql(sql));
    expect(plan?.tables.length ?? (moved < 2 ? moved : -1)).toBe(moved);
  });

  it('moves a CREATE without a DROP before it too (nothing earlier in the run touches its table)', () => {
    const plan = planParallelTables(splitSql(`SET NAMES utf8mb4;\nCREATE TABLE a (id int);\nINSERT INTO a VALUES (1);\nCREATE TABLE IF NOT EXISTS \`b\` (id int);\n${table('c')}`))!;
    expect(plan.tables.map((t) => t.map((s) => s.line))).toEqual([[2], [4], [5, 6]]);
    expect(plan.rest.map((s) => s.line)).toEqual([1, 3]);
  });

  it('moves nothing when a table is made again further on, or when there are fewer than two tables', () => {
    expect(planParallelTables(splitSql(`${table('a')}${table('b')}ALTER TABLE b ADD x int;\n${table('a')}`))).toBeNull();
    expect(planParallelTables(splitSql(`${table('a')}INSERT INTO a VALUES (1, 'x');`))).toBeNull();
    // A word in a string is no SELECT, LIKE or REFERENCES.
    expect(planParallelTables(splitSql(`DROP TABLE IF EXISTS a;\nCREATE TABLE a (id int, note varchar(64) DEFAULT 'SELECT what you LIKE') COMMENT 'REFERENCES';\n${table('b')}`))!.tables).toHaveLength(2);
  });
});
