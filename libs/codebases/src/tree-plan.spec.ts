import { planTree, type CheckoutEntry } from './tree-plan.js';
import { SAMPLE_MANIFEST } from './sample-codebase.js';

const checkout = (lines: string): CheckoutEntry[] =>
  lines
    .trim()
    .split('\n')
    .map((l) => {
      const [type, path] = l.trim().split(' ');
      return { type: type as CheckoutEntry['type'], path: path! };
    });

const SAMPLE = checkout(`
  f hosting.manifest.json
  f README.md
  d heavymetal
  d heavymetal/lib
  f heavymetal/lib/shop.php
  d heavymetal/theme
  d heavymetal/theme/default
  f heavymetal/theme/default/layout.html
  d heavymetal/snippets
  f heavymetal/snippets/hello.php
  f heavymetal/config.php.tpl
  d heavymetal/sql
  d heavymetal/sql/updates
  f heavymetal/sql/updates/0001_base.sql
  f heavymetal/cron.php
  d heavymetal/tmp
  f heavymetal/tmp/.keep
  d html
  f html/index.php
  f html/robots.txt
  d html/mas_assets
  d html/mas_assets/theme
  f html/mas_assets/theme/style.css
  d html/mas_assets/js
  f html/mas_assets/js/app.js
  d install
  f install/setup.php
`);

describe('planTree (minimal symlink cover)', () => {
  it('links everything at the highest level, making real only the directories something below needs', () => {
    const plan = planTree(SAMPLE_MANIFEST, SAMPLE);
    expect(plan.dirs).toEqual(['heavymetal', 'html', 'html/mas_assets']);
    expect(plan.links).toEqual([
      { path: 'README.md', target: 'README.md' },
      { path: 'heavymetal/config.php.tpl', target: 'heavymetal/config.php.tpl' },
      { path: 'heavymetal/cron.php', target: 'heavymetal/cron.php' },
      { path: 'heavymetal/lib', target: 'heavymetal/lib' },
      { path: 'heavymetal/sql', target: 'heavymetal/sql' },
      { path: 'hosting.manifest.json', target: 'hosting.manifest.json' },
      { path: 'html/index.php', target: 'html/index.php' },
      { path: 'html/mas_assets/js', target: 'html/mas_assets/js' },
      { path: 'html/robots.txt', target: 'html/robots.txt' },
      { path: 'html/lib', target: 'heavymetal/lib' },
    ]);
    expect(plan.copies).toEqual(['heavymetal/theme', 'heavymetal/snippets', 'html/mas_assets/theme']);
    expect(plan.writable).toEqual(['heavymetal/tmp', 'heavymetal/cache', 'html/mas_assets/uploads']);
    expect(plan.rendered).toEqual(['heavymetal/config.php']);
    // Excluded: never linked, and nothing links a parent of it.
    expect(plan.links.some((l) => l.path.startsWith('install'))).toBe(false);
  });

  it('links a whole top-level directory when nothing below it is special, and honours declared real directories', () => {
    const manifest = { ...SAMPLE_MANIFEST, copy: [], writable: [], templates: [], links: [], exclude: [], real: ['html/mas_assets'] };
    const plan = planTree(manifest, SAMPLE);
    expect(plan.dirs).toEqual(['html', 'html/mas_assets']);
    expect(plan.links.map((l) => l.path)).toContain('heavymetal');
    expect(plan.links.map((l) => l.path)).toContain('install');
    expect(plan.links.map((l) => l.path)).toContain('html/mas_assets/theme');
  });

  it('creates the parents of a writable directory the checkout does not have', () => {
    const manifest = { ...SAMPLE_MANIFEST, copy: [], templates: [], links: [], exclude: [], writable: ['var/cache/pages'] };
    const plan = planTree(manifest, SAMPLE);
    expect(plan.dirs).toEqual(['var', 'var/cache']);
    expect(plan.links.map((l) => l.path)).toEqual(expect.arrayContaining(['heavymetal', 'html', 'install']));
  });
});
