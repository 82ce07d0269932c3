import { execFileSync } from 'node:child_process';
import { renderTemplate } from '@app/codebases';

/** PHP run as the shop runs it: arguments in argv, never in the code. */
function php(code: string, ...args: string[]): string {
  return execFileSync('php', ['-r', code, '--', ...args], { encoding: 'utf8' });
}

const PHP_HAS_ARGON2ID = php('echo defined("PASSWORD_ARGON2ID") ? "yes" : "no";') === 'yes';

/** The named hash functions of templates, checked by the PHP that shops verify them with. */
describe('template hash functions (checked by php-cli)', () => {
  // A generated secret of the `symbols` alphabet, and one a person might type.
  const passwords = ['Zq7!#%+-.:=?@^_~aB3xY9', 'pässwörd mit Ümlaut'];

  it("bcrypt: PHP's password_verify accepts the hash, and rejects another password", async () => {
    for (const password of passwords) {
      const hash = await renderTemplate('{{ bcrypt(secret.admin_password) }}', 'text', { 'secret.admin_password': password });
      expect(hash.startsWith('$2y$10$')).toBe(true);
      expect(php('echo json_encode([password_verify($argv[1], $argv[2]), password_verify($argv[1] . "x", $argv[2]), password_get_info($argv[2])["algoName"]]);', password, hash)).toBe(
        '[true,false,"bcrypt"]',
      );
    }
  });

  it("argon2id: PHP's password_verify accepts the PHC string, and finds it needs no rehash at PHP's defaults", async () => {
    const hash = await renderTemplate('{{ argon2id(secret.admin_password) }}', 'text', { 'secret.admin_password': passwords[0]! });
    expect(hash).toMatch(/^\$argon2id\$v=19\$m=65536,t=4,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    if (!PHP_HAS_ARGON2ID) {
      console.warn('php-cli here lacks PASSWORD_ARGON2ID (built without libargon2/sodium): the PHP check of the argon2id hash is skipped');
      return;
    }
    expect(
      php('echo json_encode([password_verify($argv[1], $argv[2]), password_verify("other", $argv[2]), password_needs_rehash($argv[2], PASSWORD_ARGON2ID)]);', passwords[0]!, hash),
    ).toBe('[true,false,false]');
  });

  it("OpenCart's salted chain sha1(salt . sha1(salt . sha1(password))) equals PHP's, and md5/sha256 too", async () => {
    const values = { 'secret.admin_salt': 'k3Xz9Qa1b', 'secret.admin_password': passwords[1]! };
    const ours = await renderTemplate(
      "{{ sha1(concat(secret.admin_salt, sha1(concat(secret.admin_salt, sha1(secret.admin_password))))) }} {{ md5(secret.admin_password) }} {{ sha256(concat('x', secret.admin_salt)) }}",
      'text',
      values,
    );
    const theirs = php('echo sha1($argv[1] . sha1($argv[1] . sha1($argv[2]))), " ", md5($argv[2]), " ", hash("sha256", "x" . $argv[1]);', values['secret.admin_salt'], values['secret.admin_password']);
    expect(ours).toBe(theirs);
  });

  it('renders a hash into an SQL template as a quoted string literal', async () => {
    const sql = await renderTemplate("INSERT INTO oc_user (password) VALUES ({{ bcrypt(secret.p) }});", 'sql', { 'secret.p': 'x' });
    expect(sql).toMatch(/^INSERT INTO oc_user \(password\) VALUES \('\$2y\$10\$[./A-Za-z0-9]{53}'\);$/);
  });
});
