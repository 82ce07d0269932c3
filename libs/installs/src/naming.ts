/**
 * Names derived for an install. The fs name is the home directory and the
 * database user, so it keeps to what every tool accepts: lower-case letters
 * and digits, starting with a letter. MySQL allows 64 characters in a
 * database name and 32 in a user name (MySQL 8; MariaDB allows 80).
 */
export const FS_NAME_BASE_LENGTH = 10;
export const FS_NAME_MAX = 16;
export const DB_NAME_PREFIX = 'shop_';

/** `www.Bio-Ex.co.uk` → `bioexcouk`; the first letters of the first hostname, as the seed does. */
export function fsNameBase(hostname: string): string {
  const letters = hostname
    .toLowerCase()
    .replace(/^www\d*\./, '')
    .replace(/[^a-z0-9]/g, '');
  const base = /^[a-z]/.test(letters) ? letters : `s${letters}`;
  return base.slice(0, FS_NAME_BASE_LENGTH);
}

/** Candidates in order: `base`, `base1`, `base2`, ... skipping the taken ones. */
export function nextFsName(base: string, taken: ReadonlySet<string>): string {
  if (!taken.has(base)) return base;
  for (let n = 1; ; n++) {
    const candidate = `${base}${n}`;
    if (candidate.length > FS_NAME_MAX) throw new Error(`no free fs name left for ${base}`);
    if (!taken.has(candidate)) return candidate;
  }
}

export function dbNameFor(fsName: string): string {
  return `${DB_NAME_PREFIX}${fsName}`;
}
