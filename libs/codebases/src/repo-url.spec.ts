import { redactRepoUrl, repoAccess } from './repo-url.js';

describe('repository URLs with credentials', () => {
  it('shows them without the password or token', () => {
    expect(redactRepoUrl('https://deploy:glpat-Secret123@git.example.com/shop.git')).toBe('https://deploy:***@git.example.com/shop.git');
    expect(redactRepoUrl('https://ghp_Token999@github.com/acme/shop.git')).toBe('https://***@github.com/acme/shop.git');
    expect(redactRepoUrl('https://u:p%40ss@w@host/x.git')).toBe('https://u:***@host/x.git');
    expect(redactRepoUrl('ssh://git@git.example.com/shop.git')).toBe('ssh://git@git.example.com/shop.git');
    expect(redactRepoUrl('ssh://git:hunter22@git.example.com/shop.git')).toBe('ssh://git:***@git.example.com/shop.git');
    expect(redactRepoUrl('git@git.example.com:shop.git')).toBe('git@git.example.com:shop.git');
    expect(redactRepoUrl('/srv/repos/shop')).toBe('/srv/repos/shop');
    expect(redactRepoUrl('https://git.example.com/shop.git')).toBe('https://git.example.com/shop.git');
    expect(redactRepoUrl(redactRepoUrl('https://a:b@h/x'))).toBe('https://a:***@h/x');
  });

  it('gives git the URL without credentials, and the credentials to a helper for that host only, through the environment', () => {
    const access = repoAccess('https://deploy:p%40ss-Word1@git.example.com:8443/acme/shop.git');
    expect(access.url).toBe('https://git.example.com:8443/acme/shop.git');
    expect(access.shown).toBe('https://deploy:***@git.example.com:8443/acme/shop.git');
    expect(access.env).toMatchObject({
      GIT_CONFIG_COUNT: '2',
      GIT_CONFIG_KEY_0: 'credential.helper',
      GIT_CONFIG_VALUE_0: '',
      GIT_CONFIG_KEY_1: 'credential.https://git.example.com:8443.helper',
      SHOP_ENGINE_GIT_USERNAME: 'deploy',
      SHOP_ENGINE_GIT_PASSWORD: 'p@ss-Word1',
    });
    // The helper is a constant script: no credential in it.
    expect(access.env.GIT_CONFIG_VALUE_1).not.toContain('ss-Word1');
    const token = repoAccess('https://ghp_Token999@github.com/acme/shop.git');
    expect(token.url).toBe('https://github.com/acme/shop.git');
    expect(token.env).toMatchObject({ SHOP_ENGINE_GIT_USERNAME: 'ghp_Token999', SHOP_ENGINE_GIT_PASSWORD: '' });
  });

  it('leaves other URLs to git as they are, an ssh password dropped', () => {
    expect(repoAccess('/srv/repos/shop')).toMatchObject({ url: '/srv/repos/shop', env: {} });
    expect(repoAccess('git@host:shop.git')).toMatchObject({ url: 'git@host:shop.git', env: {} });
    expect(repoAccess('ssh://git:hunter22@host/shop.git')).toMatchObject({ url: 'ssh://git@host/shop.git', env: {} });
  });

  it('redacts the credentials from any text: the URL, git\'s messages, the decoded password', () => {
    const access = repoAccess('https://deploy:p%40ss-Word1@git.example.com/shop.git');
    const stderr = "fatal: unable to access 'https://deploy:p%40ss-Word1@git.example.com/shop.git/': Could not resolve host; password p@ss-Word1 refused";
    const redacted = access.redact(`git clone -- https://deploy:p%40ss-Word1@git.example.com/shop.git /srv/x: ${stderr}`);
    expect(redacted).not.toMatch(/ss-Word1|p%40ss/);
    expect(redacted).toContain('https://deploy:***@git.example.com/shop.git');
    expect(redacted).toContain('password *** refused');
    // Another URL's credentials in the same text too.
    expect(access.redact('redirected to https://x:yz@mirror.example.com/a')).toBe('redirected to https://x:***@mirror.example.com/a');
  });
});
