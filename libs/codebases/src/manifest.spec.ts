import { ValidationFailedError } from '@app/common';
import { manifestSourcePaths, parseManifest } from './manifest.js';
import { SAMPLE_MANIFEST } from './sample-codebase.js';

const plain = () => JSON.parse(JSON.stringify(SAMPLE_MANIFEST)) as Record<string, any>;

async function problems(manifest: unknown): Promise<string> {
  try {
    await parseManifest(manifest);
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationFailedError);
    return (error as Error).message;
  }
  throw new Error('the manifest was accepted');
}

describe('parseManifest', () => {
  it('accepts the sample manifest and lists the checkout paths it names', async () => {
    const manifest = await parseManifest(plain());
    expect(manifest.copy).toEqual(['heavymetal/theme', 'heavymetal/snippets', 'html/mas_assets/theme']);
    expect(manifestSourcePaths(manifest)).toContain('heavymetal/config.php.tpl');
  });

  it.each([
    ['an absolute path', (m: any) => (m.copy = ['/etc']), /copy must be relative paths/],
    ['a .. segment', (m: any) => (m.writable = ['html/../../etc']), /writable must be relative paths/],
    ['a shell word', (m: any) => (m.copy = ['a;rm -rf /']), /copy must be relative/],
    ['a newline', (m: any) => (m.exclude = ['a\nb']), /exclude must be relative/],
    ['an unknown field', (m: any) => (m.hooks = ['curl evil']), /property hooks should not exist/],
    ['a wrong version', (m: any) => (m.version = 2), /version must be 1/],
    ['a cron that is a shell string', (m: any) => (m.crons = [{ schedule: '* * * * *', command: ['sh', '-c', 'rm -rf /; echo'] }]), /crons.command words/],
    ['a bad schedule', (m: any) => (m.crons = [{ schedule: '* * * *', command: ['php'] }]), /crons.schedule/],
    ['a copied path also excluded', (m: any) => (m.exclude = ['heavymetal']), /heavymetal\/theme, heavymetal\/snippets also excluded/],
    ['a copied path inside another', (m: any) => m.copy.push('heavymetal/theme/default'), /heavymetal\/theme\/default inside another copied path/],
    ['a target produced twice', (m: any) => m.links.push({ path: 'heavymetal/config.php', target: 'x' }), /heavymetal\/config.php produced twice/],
    ['a secret declared twice', (m: any) => m.secrets.push({ name: 'cookie_key', length: 16, alphabet: 'hex' }), /cookie_key declared twice/],
    ['a template language we cannot escape for', (m: any) => (m.templates[0].language = 'perl'), /language must be one of/],
    ['no web rules', (m: any) => delete m.web, /web/],
    ['a sql_mode that breaks escaping', (m: any) => (m.sql.session.sqlMode = 'ANSI_QUOTES,NO_BACKSLASH_ESCAPES'), /NO_BACKSLASH_ESCAPES is not supported/],
  ])('refuses %s', async (_what, change, message) => {
    const manifest = plain();
    change(manifest);
    expect(await problems(manifest)).toMatch(message);
  });

  it('refuses what is not an object', async () => {
    expect(await problems([])).toMatch(/must be a JSON object/);
    expect(await problems('copy everything')).toMatch(/must be a JSON object/);
  });
});
