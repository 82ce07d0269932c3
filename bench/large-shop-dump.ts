import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { simpleGit } from 'simple-git';
import { buildSampleRepository } from '@app/codebases';

/**
 * A shop's install dump of the size typical shops ship (OpenCart's is about
 * 130 tables with demo data): for each table a DROP, a CREATE and one
 * multi-row INSERT of demo rows, in mysqldump's format (`--` comments,
 * backticks, utf8mb4), about 400 statements in all. Deterministic.
 */
export function largeShopDump(tables = 130, rowsPerTable = 20): { sql: string; statements: number } {
  const parts: string[] = ['-- A shop\'s install dump (demo data), as its release tool writes it', '', 'SET FOREIGN_KEY_CHECKS = 0;', ''];
  let statements = 1;
  for (let t = 1; t <= tables; t++) {
    const name = `demo_${String(t).padStart(3, '0')}`;
    parts.push(
      '--',
      `-- Table structure for table \`${name}\``,
      '--',
      '',
      `DROP TABLE IF EXISTS \`${name}\`;`,
      `CREATE TABLE \`${name}\` (`,
      '  `id` int(11) NOT NULL AUTO_INCREMENT,',
      '  `store_id` int(11) NOT NULL DEFAULT 0,',
      '  `code` varchar(64) NOT NULL,',
      '  `name` varchar(255) NOT NULL,',
      '  `description` text NOT NULL,',
      '  `price` decimal(15,4) NOT NULL DEFAULT 0.0000,',
      '  `sort_order` int(3) NOT NULL DEFAULT 0,',
      '  `status` tinyint(1) NOT NULL DEFAULT 1,',
      "  `date_added` datetime NOT NULL DEFAULT '2000-01-01 00:00:00',",
      '  PRIMARY KEY (`id`),',
      '  KEY `code` (`code`),',
      '  KEY `store_status` (`store_id`, `status`)',
      ') ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;',
      '',
      '--',
      `-- Dumping data for table \`${name}\``,
      '--',
      '',
      `INSERT INTO \`${name}\` (\`id\`, \`store_id\`, \`code\`, \`name\`, \`description\`, \`price\`, \`sort_order\`, \`status\`, \`date_added\`) VALUES`,
      Array.from({ length: rowsPerTable }, (_, r) => {
        const id = r + 1;
        const description = `Demo entry ${id} of ${name}: it's shipped with the shop; a semicolon; Größe ✓ (${'lorem ipsum '.repeat(4).trim()})`;
        return `(${id}, 0, '${name}_${id}', 'Demo ${name} ${id}', '${description.replace(/'/g, "\\'")}', '${(id * 3.25).toFixed(4)}', ${id}, 1, '2020-0${(id % 9) + 1}-1${id % 10} 12:00:00')`;
      }).join(',\n') + ';',
      '',
    );
    statements += 3;
  }
  parts.push('SET FOREIGN_KEY_CHECKS = 1;', '');
  statements += 1;
  return { sql: parts.join('\n'), statements };
}

/** The sample codebase with the large dump as its next SQL update (run by every install): its repository and commit. */
export async function buildLargeSqlRepository(dir: string): Promise<{ path: string; revision: string; statements: number; bytes: number }> {
  const repo = await buildSampleRepository(dir);
  const { sql, statements } = largeShopDump();
  await mkdir(join(dir, 'heavymetal/sql/updates'), { recursive: true });
  await writeFile(join(dir, 'heavymetal/sql/updates/0003_shop_dump.sql'), sql);
  const git = simpleGit({ baseDir: dir }).env({ PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir });
  await git.add('.');
  await git.commit('A large install dump');
  return { path: repo.path, revision: (await git.revparse(['HEAD'])).trim(), statements, bytes: Buffer.byteLength(sql) };
}
