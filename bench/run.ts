import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/**
 * `npm run bench -- <name>`: runs bench/<name>.bench.ts (compiled), which
 * starts what it needs and prints its figures as one JSON line, last.
 * The system packages of the servers a bench starts (MariaDB, sshd, nginx,
 * php-fpm) are ensured first, as `npm test` does.
 */
const here = dirname(fileURLToPath(import.meta.url));
const available = readdirSync(here)
  .filter((f) => f.endsWith('.bench.js'))
  .map((f) => f.replace(/\.bench\.js$/, ''))
  .sort();
const name = process.argv[2];

if (!name || !available.includes(name)) {
  process.stderr.write(
    (name ? `unknown benchmark "${name}". ` : '') +
      `usage: npm run bench -- <name>; available: ${available.length ? available.join(', ') : '(none yet)'}\n`,
  );
  process.exit(name ? 1 : 2);
}
// Its report goes to stderr: stdout is the bench's JSON line alone.
const ensured = spawnSync('bash', [join(here, '..', '..', 'scripts', 'ensure-system-packages.sh')], { stdio: ['ignore', 2, 2] });
if (ensured.error) throw ensured.error;
if (ensured.status !== 0) {
  process.stderr.write(`npm run bench: the system packages the bench needs are missing (see above)\n`);
  process.exit(1);
}
await import(pathToFileURL(join(here, `${name}.bench.js`)).href);
