import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { renderTemplate } from './render-template.js';

const HOSTILE = ["O'Brien's shop", 'back\\slash\\', "'; system('touch /tmp/pwned'); '", '$(id) `id` ${x}', 'two\nlines', '?>< ?php echo 1;'];

describe('renderTemplate', () => {
  it('fills placeholders and secrets', () => {
    expect(renderTemplate("<?php return ['h' => {{hostname}}, 'k' => {{ secret.cookie_key }}];", 'php', { hostname: 'a.example.com', 'secret.cookie_key': 'xyz' })).toBe(
      "<?php return ['h' => 'a.example.com', 'k' => 'xyz'];",
    );
  });

  it('names unknown placeholders and renders nothing', () => {
    expect(() => renderTemplate('{{a}} {{b}} {{a}}', 'text', {}, 'config.php')).toThrow('config.php: unknown placeholders a, b');
    expect(() => renderTemplate('x = {{ Host-Name }}', 'text', {}, 'config.php')).toThrow('config.php: a malformed placeholder at "{{ Host-Name }}"');
  });

  it('keeps hostile values as data in PHP, as PHP itself reads them', () => {
    const values = Object.fromEntries(HOSTILE.map((v, i) => [`v${i}`, v]));
    const php = renderTemplate(`<?php return [${HOSTILE.map((_, i) => `{{v${i}}}`).join(', ')}];`, 'php', values);
    const dir = mkdtempSync(join(tmpdir(), 'render-'));
    try {
      writeFileSync(join(dir, 'config.php'), php);
      const out = execFileSync('php', ['-r', 'echo json_encode(require $argv[1]);', join(dir, 'config.php')], { encoding: 'utf8' });
      expect(JSON.parse(out)).toEqual(HOSTILE);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps hostile values as data in JSON, and refuses what INI and text cannot hold', () => {
    const values = Object.fromEntries(HOSTILE.map((v, i) => [`v${i}`, v]));
    expect(JSON.parse(renderTemplate(`[${HOSTILE.map((_, i) => `{{v${i}}}`).join(',')}]`, 'json', values))).toEqual(HOSTILE);
    expect(() => renderTemplate('x={{v}}', 'ini', { v: 'a"b' })).toThrow(/INI/);
    expect(() => renderTemplate('x={{v}}', 'text', { v: 'a\nb' })).toThrow(/newline/);
  });
});
