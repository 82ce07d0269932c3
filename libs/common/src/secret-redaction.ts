import { AsyncLocalStorage } from 'node:async_hooks';
import { sqlStringLiteral } from './sql-literal.js';

/** Shorter values are not secrets worth hunting for (and would blank out ordinary words). */
const MIN_SECRET_LENGTH = 8;
const MASK = '[redacted]';

const scope = new AsyncLocalStorage<Set<string>>();

/**
 * Runs `fn` with a set of secrets of its own: what it (and everything it
 * awaits) registers is masked by `redactSecrets` inside it. A job runs in
 * one, so the passwords its steps handle never reach its output, its
 * journal, its error or the log.
 */
export function withSecretScope<T>(fn: () => T): T {
  return scope.run(new Set(), fn);
}

/**
 * Secrets the current scope must never show, as they are and as they
 * appear quoted in SQL or PHP. Outside a scope, nothing is registered.
 */
export function registerSecrets(...values: (string | null | undefined)[]): void {
  const secrets = scope.getStore();
  if (!secrets) return;
  for (const value of values) {
    if (typeof value !== 'string' || value.length < MIN_SECRET_LENGTH) continue;
    secrets.add(value);
    // How a template or an error shows it quoted: backslash-escaped (SQL, PHP single quotes).
    secrets.add(sqlStringLiteral(value).slice(1, -1));
    secrets.add(value.replace(/[\\']/g, (c) => `\\${c}`));
  }
}

/** The text with every secret of the current scope masked (the longest first, so none is half-masked). */
export function redactSecrets(text: string): string {
  const secrets = scope.getStore();
  if (!secrets || secrets.size === 0 || text === '') return text;
  let out = text;
  for (const secret of [...secrets].sort((a, b) => b.length - a.length)) {
    if (out.includes(secret)) out = out.split(secret).join(MASK);
  }
  return out;
}
