import { sqlStringLiteral } from '@app/common';
import type { TemplateLanguage } from './manifest.js';

/** Languages values can be escaped for: a config template's, or SQL (the manifest's SQL templates). */
export type EscapeLanguage = TemplateLanguage | 'sql';

export class TemplateError extends Error {
  override name = 'TemplateError';
}

const PLACEHOLDER = /\{\{\s*([a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)?)\s*\}\}/g;

/**
 * Renders a config template: every `{{name}}` (or `{{secret.name}}`) is
 * replaced by its value escaped for the template's language, so a value
 * with quotes, backslashes or newlines renders as data and injects nothing.
 * An unknown name is an error naming it; nothing is left unrendered.
 */
export function renderTemplate(source: string, language: EscapeLanguage, values: Readonly<Record<string, string>>, name = 'template'): string {
  const unknown = new Set<string>();
  const out = source.replace(PLACEHOLDER, (_m, key: string) => {
    const value = values[key];
    if (value === undefined) {
      unknown.add(key);
      return '';
    }
    return escapeFor(language, value, key, name);
  });
  if (unknown.size > 0) throw new TemplateError(`${name}: unknown placeholder${unknown.size > 1 ? 's' : ''} ${[...unknown].join(', ')}`);
  const malformed = source.replace(PLACEHOLDER, '').indexOf('{{');
  if (malformed !== -1) throw new TemplateError(`${name}: a malformed placeholder at ${JSON.stringify(source.slice(malformed, malformed + 24))}`);
  return out;
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
