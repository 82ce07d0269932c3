import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/**
 * `npm run bench -- <name>`: runs bench/<name>.bench.ts (compiled), which
 * starts what it needs and prints its figures as one JSON line, last.
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
await import(pathToFileURL(join(here, `${name}.bench.js`)).href);
