/** What replaces a credential wherever a repository URL is shown. */
export const REDACTED = '***';

/**
 * A repository URL as it may be shown (API, logs, job output, audit):
 * `https://user:***@host/...` when it carries a password, `https://***@host/...`
 * when an http(s) URL carries only a user (a token given as user name). An
 * ssh or git user name (`git@`) is a login name, not a secret, and stays.
 */
export function redactRepoUrl(url: string): string {
  return url.replace(URL_USERINFO, (_all, scheme: string, userinfo: string) => `${scheme}://${redactUserinfo(scheme, userinfo)}@`);
}

/** How git reaches a repository without its credentials ever being in an argument, a message or the checkout's .git/config. */
export interface RepoAccess {
  /** The URL git is given: the repository's, without credentials. */
  url: string;
  /** Environment for git: a credential helper (constant script) answering with the URL's credentials, for its host only. */
  env: Record<string, string>;
  /** The URL as shown (see redactRepoUrl). */
  shown: string;
  /** Removes the credentials from any text (git's stderr, an error message). */
  redact(text: string): string;
}

/**
 * The helper git runs for credentials (`credential.<origin>.helper`): a
 * constant script; the user name and password come from the environment, so
 * they are in no argument vector (visible in `ps` on the server) and git
 * never writes them into the clone's `remote.origin.url`.
 */
const CREDENTIAL_HELPER = '!f() { test "$1" = get || exit 0; printf "username=%s\\npassword=%s\\n" "$SHOP_ENGINE_GIT_USERNAME" "$SHOP_ENGINE_GIT_PASSWORD"; }; f';

/** Splits an http(s) URL's credentials off for a credential helper; other URLs are used as they are (an ssh password would not be used anyway, and is dropped). */
export function repoAccess(repoUrl: string): RepoAccess {
  const secrets = new Set<string>();
  const shown = redactRepoUrl(repoUrl);
  // Up to the last @ before the path: the user info (an @ inside it should be %40, but is not always).
  const match = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/]*)@/.exec(repoUrl);
  let url = repoUrl;
  let env: Record<string, string> = {};
  if (match) {
    const [, scheme, userinfo] = match as unknown as [string, string, string];
    const colon = userinfo.indexOf(':');
    const user = colon < 0 ? userinfo : userinfo.slice(0, colon);
    const password = colon < 0 ? null : userinfo.slice(colon + 1);
    const http = /^https?$/i.test(scheme);
    // A user name alone in an http(s) URL is the token; beside a password it is a login name.
    for (const secret of [password, http && password === null ? user : null]) {
      if (!secret) continue;
      secrets.add(secret);
      secrets.add(safeDecode(secret));
    }
    if (http) {
      url = repoUrl.replace(match[0], `${scheme}://`);
      const origin = new URL(url).origin;
      env = {
        GIT_CONFIG_COUNT: '2',
        // An empty helper first: no helper of the server's own configuration sees (or stores) these credentials.
        GIT_CONFIG_KEY_0: 'credential.helper',
        GIT_CONFIG_VALUE_0: '',
        GIT_CONFIG_KEY_1: `credential.${origin}.helper`,
        GIT_CONFIG_VALUE_1: CREDENTIAL_HELPER,
        SHOP_ENGINE_GIT_USERNAME: safeDecode(user),
        SHOP_ENGINE_GIT_PASSWORD: password === null ? '' : safeDecode(password),
      };
    } else if (password !== null) {
      url = repoUrl.replace(match[0], `${scheme}://${user}@`);
    }
  }
  const known = [...secrets].filter((s) => s.length >= MIN_SECRET).sort((a, b) => b.length - a.length);
  return {
    url,
    env,
    shown,
    redact: (text: string) => {
      let out = text.split(repoUrl).join(shown);
      out = redactRepoUrl(out);
      for (const secret of known) out = out.split(secret).join(REDACTED);
      return out;
    },
  };
}

/** Shorter credentials are redacted where a URL shows them, not as bare text (which would garble every message). */
const MIN_SECRET = 4;

/** `scheme://userinfo@` anywhere in a text. */
const URL_USERINFO = /\b([A-Za-z][A-Za-z0-9+.-]*):\/\/([^\s/'"`]+)@/g;

function redactUserinfo(scheme: string, userinfo: string): string {
  if (userinfo === REDACTED) return userinfo;
  const colon = userinfo.indexOf(':');
  if (colon >= 0) return `${userinfo.slice(0, colon)}:${REDACTED}`;
  return /^https?$/i.test(scheme) ? REDACTED : userinfo;
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
