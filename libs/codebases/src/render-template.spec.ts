import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import bcrypt from 'bcryptjs';
import { renderTemplate } from './render-template.js';

const HOSTILE = ["O'Brien's shop", 'back\\slash\\', "'; system('touch /tmp/pwned'); '", '$(id) `id` ${x}', 'two\nlines', '?>< ?php echo 1;'];

describe('renderTemplate', () => {
  it('fills placeholders and secrets', async () => {
    expect(await renderTemplate("<?php return ['h' => {{hostname}}, 'k' => {{ secret.cookie_key }}];", 'php', { hostname: 'a.example.com', 'secret.cookie_key': 'xyz' })).toBe(
      "<?php return ['h' => 'a.example.com', 'k' => 'xyz'];",
    );
  });

  it('names unknown placeholders and renders nothing', async () => {
    await expect(renderTemplate('{{a}} {{b}} {{a}}', 'text', {}, 'config.php')).rejects.toThrow('config.php: unknown placeholders a, b');
    await expect(renderTemplate('x = {{ Host-Name }}', 'text', {}, 'config.php')).rejects.toThrow('config.php: a malformed placeholder at "{{ Host-Name }}"');
  });

  it('keeps hostile values as data in PHP, as PHP itself reads them', async () => {
    const values = Object.fromEntries(HOSTILE.map((v, i) => [`v${i}`, v]));
    const php = await renderTemplate(`<?php return [${HOSTILE.map((_, i) => `{{v${i}}}`).join(', ')}];`, 'php', values);
    const dir = mkdtempSync(join(tmpdir(), 'render-'));
    try {
      writeFileSync(join(dir, 'config.php'), php);
      const out = execFileSync('php', ['-r', 'echo json_encode(require $argv[1]);', join(dir, 'config.php')], { encoding: 'utf8' });
      expect(JSON.parse(out)).toEqual(HOSTILE);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps hostile values as data in JSON, and refuses what INI and text cannot hold', async () => {
    const values = Object.fromEntries(HOSTILE.map((v, i) => [`v${i}`, v]));
    expect(JSON.parse(await renderTemplate(`[${HOSTILE.map((_, i) => `{{v${i}}}`).join(',')}]`, 'json', values))).toEqual(HOSTILE);
    await expect(renderTemplate('x={{v}}', 'ini', { v: 'a"b' })).rejects.toThrow(/INI/);
    await expect(renderTemplate('x={{v}}', 'text', { v: 'a\nb' })).rejects.toThrow(/newline/);
  });

  it('reads dotted names of up to three segments', async () => {
    const values = { 'site.2.url': 'https://b.example.com/shop/', 'attr.reseller': 'acme', 'secret.admin_password': 's3cret' };
    expect(await renderTemplate('{{site.2.url}} {{ attr.reseller }} {{secret.admin_password}}', 'text', values)).toBe('https://b.example.com/shop/ acme s3cret');
    await expect(renderTemplate('{{site.2.url.x}}', 'text', values)).rejects.toThrow('a malformed placeholder at "{{site.2.url.x}}"');
  });

  it('renders an unknown name under an optional prefix as empty, and only there', async () => {
    expect(await renderTemplate('[{{attr.reseller}}]', 'php', {}, 'c.php', { optionalPrefixes: ['attr.'] })).toBe("['']");
    await expect(renderTemplate('{{attr.reseller}} {{secret.x}}', 'php', {}, 'c.php', { optionalPrefixes: ['attr.'] })).rejects.toThrow('c.php: unknown placeholder secret.x');
    await expect(renderTemplate('{{attr.reseller}}', 'php', {}, 'c.php')).rejects.toThrow('c.php: unknown placeholder attr.reseller');
  });

  it('calls functions over names, literals and nested calls, and escapes the result', async () => {
    const sha1 = (s: string) => createHash('sha1').update(s).digest('hex');
    const values = { 'secret.admin_salt': 'Ab9', 'secret.admin_password': "pa'ss", store_name: "O'Brien" };
    const chain = '{{ sha1(concat(secret.admin_salt, sha1(concat(secret.admin_salt, sha1(secret.admin_password))))) }}';
    expect(await renderTemplate(`x=${chain}`, 'text', values)).toBe(`x=${sha1(`Ab9${sha1(`Ab9${sha1("pa'ss")}`)}`)}`);
    expect(await renderTemplate("{{ md5('abc') }} {{sha256( 'abc' )}}", 'text', {})).toBe(
      `${createHash('md5').update('abc').digest('hex')} ${createHash('sha256').update('abc').digest('hex')}`,
    );
    expect(await renderTemplate("{{ concat(store_name, ' & co', '}}') }}", 'sql', values)).toBe("'O\\'Brien & co}}'");
    expect(await renderTemplate("<?php $n = {{concat(store_name, '\\')}};", 'php', values)).toBe("<?php $n = 'O\\'Brien\\\\';");
  });

  it('names unknown functions and wrong argument counts before computing anything', async () => {
    await expect(renderTemplate('{{ crc32(a) }} {{ nope }} {{ sha1(a, b) }} {{ bcrypt() }}', 'text', { a: 'x', b: 'y' }, 'install.sql')).rejects.toThrow(
      'install.sql: unknown placeholder nope; unknown function crc32; sha1 takes 1 argument, not 2; bcrypt takes 1 argument, not 0',
    );
    for (const bad of ["{{ sha1('x' }}", '{{ sha1(a b) }}', "{{ 'lit' }}", '{{ site.url(x) }}', "{{ sha1('unterminated) }}", '{{ sha1(a,) }}']) {
      await expect(renderTemplate(bad, 'text', { a: 'x' })).rejects.toThrow(/a malformed placeholder/);
    }
  });

  it("hashes passwords as PHP's password_hash writes them", async () => {
    const hash = await renderTemplate('{{ bcrypt(secret.p) }}', 'text', { 'secret.p': 'correct horse' });
    expect(hash).toMatch(/^\$2y\$10\$[./A-Za-z0-9]{53}$/);
    expect(await bcrypt.compare('correct horse', hash)).toBe(true);
    expect(await renderTemplate('{{ argon2id(secret.p) }}', 'text', { 'secret.p': 'correct horse' })).toMatch(/^\$argon2id\$v=19\$m=65536,t=4,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    await expect(renderTemplate('{{ bcrypt(secret.p) }}', 'text', { 'secret.p': 'x'.repeat(73) }, 'install.sql')).rejects.toThrow(
      'install.sql: bcrypt uses only the first 72 bytes of a password: use argon2id for a longer one',
    );
  });
});
