import { createHash, createHmac } from 'node:crypto';
import type { TenantLogin } from '@app/databases';

const USER = /^[a-z][a-z0-9_]{0,31}$/;

/**
 * The install's read-only database account for the indexer: `<db user>_ro`
 * (an install's user is letters and digits, so no install's own user can
 * be named so), and a password derived from the install's own database
 * password. Derived, not stored: the same on every engine and every run
 * (how "ours" is recognised: an account of that name with another password
 * is someone else's), and unchanged by a SECRETS_KEY rotation, which keeps
 * the install's password.
 */
export function searchReader(install: { dbUser: string; dbName: string }, installPassword: string): TenantLogin {
  const plain = `${install.dbUser}_ro`;
  const user = USER.test(plain) ? plain : `ro_${createHash('sha256').update(install.dbName).digest('hex').slice(0, 24)}`;
  const password = createHmac('sha256', installPassword).update(`shop-engine search reader\0${install.dbName}`).digest('base64url').slice(0, 32);
  return { user, password };
}
