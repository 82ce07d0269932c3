import { commandLine, quoteArg, UnquotableArgumentError } from './shell-quote.js';

/** Hostile arguments: each must reach the program as one literal word. */
export const HOSTILE_ARGUMENTS = [
  '; rm -rf /',
  '$(touch /tmp/pwned)',
  '`touch /tmp/pwned`',
  "it's",
  "'; touch /tmp/pwned; '",
  '"double" and \\backslash\\',
  'line one\nline two',
  '$HOME ${HOME} $((1+1))',
  '* ? [a-z] ~root',
  '| & && || > < >> 2>&1',
  '-rf',
  '--help',
  '',
  ' leading and trailing ',
  'tab\there',
  '\u00e9t\u00e9 \u{1F600}',
  "''''",
  '\\',
];

describe('quoteArg', () => {
  it('leaves plain words alone', () => {
    expect(quoteArg('www_bioex1')).toBe('www_bioex1');
    expect(quoteArg('/usr/home/shop1/heavymetal/config.php')).toBe('/usr/home/shop1/heavymetal/config.php');
    expect(quoteArg('user@host:/srv/x,y=z%+')).toBe('user@host:/srv/x,y=z%+');
  });

  it('single-quotes everything else, escaping single quotes', () => {
    expect(quoteArg("it's")).toBe(`'it'\\''s'`);
    expect(quoteArg('; rm -rf /')).toBe(`'; rm -rf /'`);
    expect(quoteArg('')).toBe(`''`);
    expect(quoteArg('$(id)')).toBe(`'$(id)'`);
  });

  it('never leaves an unquoted metacharacter', () => {
    for (const arg of HOSTILE_ARGUMENTS) {
      const quoted = quoteArg(arg);
      if (quoted === arg) expect(arg).toMatch(/^[A-Za-z0-9_@%+=:,./-]+$/);
      else expect(quoted.startsWith("'") && quoted.endsWith("'")).toBe(true);
    }
  });

  it('refuses a NUL byte and an empty command', () => {
    expect(() => quoteArg('a\0b')).toThrow(UnquotableArgumentError);
    expect(() => commandLine([])).toThrow(UnquotableArgumentError);
  });

  it('joins an argument vector', () => {
    expect(commandLine(['chown', '-R', 'ftp:ftp', "/usr/home/o'brien"])).toBe(`chown -R ftp:ftp '/usr/home/o'\\''brien'`);
  });
});
