import * as crypto from 'node:crypto';
import bcrypt from 'bcryptjs';
import { sqlStringLiteral } from '@app/common';
import type { TemplateLanguage } from './manifest.js';

/** Languages values can be escaped for: a config template's, or SQL (the manifest's SQL templates). */
export type EscapeLanguage = TemplateLanguage | 'sql';

export class TemplateError extends Error {
  override name = 'TemplateError';
}

export interface RenderOptions {
  /** Names under these prefixes (e.g. `attr.`) that have no value render as '' instead of failing. */
  optionalPrefixes?: readonly string[];
}

/** `{{ name }}`, `{{ fn(arg, ...) }}`: a name, a call, or a single-quoted literal (an argument only). */
type Expression = { kind: 'name'; name: string } | { kind: 'literal'; value: string } | { kind: 'call'; fn: string; args: Expression[] };

interface Placeholder {
  start: number;
  end: number;
  text: string;
  expression: Expression;
}

/** bcrypt reads 72 bytes at most: a longer password would be cut silently, as PHP does. */
const BCRYPT_MAX_BYTES = 72;
/** PHP's PASSWORD_ARGON2ID defaults (memory in KiB), a 16-byte salt and a 32-byte hash, as password_hash writes them. */
const ARGON2ID = { memory: 65536, passes: 4, parallelism: 1, saltBytes: 16, tagLength: 32 };
const MAX_DEPTH = 8;

interface TemplateFunction {
  /** Arguments taken: [min, max]. */
  arity: [number, number];
  apply(args: string[]): string | Promise<string>;
}

const hex = (algorithm: string) => (args: string[]) => crypto.createHash(algorithm).update(args[0]!, 'utf8').digest('hex');

/** The named functions a placeholder may call: password hashes PHP's password_verify accepts, digests as old shops chain them, concat. */
const FUNCTIONS: Readonly<Record<string, TemplateFunction>> = {
  bcrypt: { arity: [1, 1], apply: ([x]) => bcryptHash(x!) },
  argon2id: { arity: [1, 1], apply: ([x]) => argon2idHash(x!) },
  sha1: { arity: [1, 1], apply: hex('sha1') },
  md5: { arity: [1, 1], apply: hex('md5') },
  sha256: { arity: [1, 1], apply: hex('sha256') },
  concat: { arity: [1, 64], apply: (args) => args.join('') },
};

/**
 * Renders a template: every `{{name}}` (dotted up to three segments:
 * `secret.admin_password`, `site.2.url`) or call `{{ fn(arg, ...) }}` is
 * replaced by its value escaped for the template's language, so a value
 * with quotes, backslashes or newlines renders as data and injects nothing.
 * Every name and function is checked before anything is computed: an
 * unknown one is an error naming it (names under `optionalPrefixes` render
 * as ''), and nothing is left unrendered.
 */
export async function renderTemplate(
  source: string,
  language: EscapeLanguage,
  values: Readonly<Record<string, string>>,
  name = 'template',
  options: RenderOptions = {},
): Promise<string> {
  const placeholders = parsePlaceholders(source, name);
  const optional = options.optionalPrefixes ?? [];
  const unknown = new Set<string>();
  const problems: string[] = [];
  const check = (e: Expression): void => {
    if (e.kind === 'name') {
      if (!Object.hasOwn(values, e.name) && !optional.some((p) => e.name.startsWith(p))) unknown.add(e.name);
    } else if (e.kind === 'call') {
      const fn = Object.hasOwn(FUNCTIONS, e.fn) ? FUNCTIONS[e.fn] : undefined;
      if (!fn) problems.push(`unknown function ${e.fn}`);
      else if (e.args.length < fn.arity[0] || e.args.length > fn.arity[1]) {
        problems.push(`${e.fn} takes ${fn.arity[0] === fn.arity[1] ? fn.arity[0] : `${fn.arity[0]} or more`} argument${fn.arity[1] > 1 ? 's' : ''}, not ${e.args.length}`);
      }
      e.args.forEach(check);
    }
  };
  for (const p of placeholders) check(p.expression);
  if (unknown.size > 0) problems.unshift(`unknown placeholder${unknown.size > 1 ? 's' : ''} ${[...unknown].join(', ')}`);
  if (problems.length > 0) throw new TemplateError(`${name}: ${[...new Set(problems)].join('; ')}`);

  const evaluate = async (e: Expression): Promise<string> => {
    if (e.kind === 'literal') return e.value;
    if (e.kind === 'name') return Object.hasOwn(values, e.name) ? values[e.name]! : '';
    const args: string[] = [];
    for (const a of e.args) args.push(await evaluate(a));
    try {
      return await FUNCTIONS[e.fn]!.apply(args);
    } catch (error) {
      // The message names the function, never its argument (a secret).
      throw error instanceof TemplateError ? new TemplateError(`${name}: ${error.message}`) : error;
    }
  };
  let out = '';
  let at = 0;
  for (const p of placeholders) {
    out += source.slice(at, p.start) + escapeFor(language, await evaluate(p.expression), p.text, name);
    at = p.end;
  }
  return out + source.slice(at);
}

/** Every `{{ ... }}` of the source, parsed; any `{{` that does not start a well-formed placeholder is an error. */
function parsePlaceholders(source: string, name: string): Placeholder[] {
  const found: Placeholder[] = [];
  let from = 0;
  for (let start = source.indexOf('{{', from); start !== -1; start = source.indexOf('{{', from)) {
    const parser = new ExpressionParser(source, start + 2);
    const expression = parser.placeholder();
    if (!expression || expression.kind === 'literal') {
      throw new TemplateError(`${name}: a malformed placeholder at ${JSON.stringify(source.slice(start, start + 24))}`);
    }
    found.push({ start, end: parser.at, text: source.slice(start + 2, parser.at - 2).trim(), expression });
    from = parser.at;
  }
  return found;
}

class ExpressionParser {
  constructor(
    private readonly source: string,
    public at: number,
  ) {}

  /** The expression and the closing `}}`, or null when malformed. */
  placeholder(): Expression | null {
    const e = this.expression(0);
    if (!e) return null;
    this.blanks();
    if (!this.source.startsWith('}}', this.at)) return null;
    this.at += 2;
    return e;
  }

  private expression(depth: number): Expression | null {
    this.blanks();
    if (this.source[this.at] === "'") {
      const end = this.source.indexOf("'", this.at + 1);
      if (end === -1 || this.source.slice(this.at + 1, end).includes('\n')) return null;
      const value = this.source.slice(this.at + 1, end);
      this.at = end + 1;
      return { kind: 'literal', value };
    }
    const word = /^[a-z][a-z0-9_]*(?:\.[a-z0-9_]+){0,2}/.exec(this.source.slice(this.at, this.at + 160));
    if (!word) return null;
    this.at += word[0].length;
    // A fourth segment is no name of ours.
    if (/^\.[a-z0-9_]/.test(this.source.slice(this.at, this.at + 2))) return null;
    const afterWord = this.at;
    this.blanks();
    if (this.source[this.at] !== '(') {
      this.at = afterWord;
      return { kind: 'name', name: word[0] };
    }
    if (word[0].includes('.') || depth >= MAX_DEPTH) return null;
    this.at++;
    const args: Expression[] = [];
    this.blanks();
    if (this.source[this.at] === ')') {
      this.at++;
      return { kind: 'call', fn: word[0], args };
    }
    for (;;) {
      const arg = this.expression(depth + 1);
      if (!arg) return null;
      args.push(arg);
      this.blanks();
      const c = this.source[this.at];
      this.at++;
      if (c === ')') return { kind: 'call', fn: word[0], args };
      if (c !== ',') return null;
    }
  }

  private blanks(): void {
    while (/\s/.test(this.source[this.at] ?? '')) this.at++;
  }
}

/** PHP password_hash(PASSWORD_BCRYPT) at its default cost: `$2y$10$`, the same algorithm as `$2b$`. */
async function bcryptHash(password: string): Promise<string> {
  if (Buffer.byteLength(password, 'utf8') > BCRYPT_MAX_BYTES) throw new TemplateError(`bcrypt uses only the first ${BCRYPT_MAX_BYTES} bytes of a password: use argon2id for a longer one`);
  if (password.includes('\0')) throw new TemplateError('bcrypt cannot hash a password with a NUL character');
  const hash = await bcrypt.hash(password, 10);
  return `$2y$${hash.slice(4)}`;
}

/** PHP password_hash(PASSWORD_ARGON2ID) with its defaults, in the PHC string form it writes (base64 without padding). */
async function argon2idHash(password: string): Promise<string> {
  const argon2 = (crypto as { argon2?: typeof crypto.argon2 }).argon2;
  if (typeof argon2 !== 'function') throw new TemplateError(`argon2id needs Node.js 24.7 or newer (node:crypto argon2); this is ${process.version}`);
  const salt = crypto.randomBytes(ARGON2ID.saltBytes);
  const hash = await new Promise<Buffer>((resolve, reject) =>
    argon2(
      'argon2id',
      { message: Buffer.from(password, 'utf8'), nonce: salt, parallelism: ARGON2ID.parallelism, tagLength: ARGON2ID.tagLength, memory: ARGON2ID.memory, passes: ARGON2ID.passes },
      (error, key) => (error ? reject(error) : resolve(key)),
    ),
  );
  const b64 = (b: Buffer) => b.toString('base64').replace(/=+$/, '');
  return `$argon2id$v=19$m=${ARGON2ID.memory},t=${ARGON2ID.passes},p=${ARGON2ID.parallelism}$${b64(salt)}$${b64(hash)}`;
}

/** A value as a literal of the language: PHP single-quoted string, JSON string, INI double-quoted string, or plain text. */
export function escapeFor(language: EscapeLanguage, value: string, key = 'value', name = 'template'): string {
  switch (language) {
    case 'php':
      // Inside '...' only \ and ' are special.
      return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
    case 'json':
      return JSON.stringify(value);
    case 'sql':
      return sqlStringLiteral(value);
    case 'ini':
      if (/[\n\r\0"]/.test(value)) throw new TemplateError(`${name}: ${key} cannot be written to an INI file (quote, newline or NUL)`);
      return `"${value.replace(/\$/g, '\\$')}"`;
    case 'text':
      if (/[\n\r\0]/.test(value)) throw new TemplateError(`${name}: ${key} has a newline or NUL, which a text template cannot hold`);
      return value;
  }
}
