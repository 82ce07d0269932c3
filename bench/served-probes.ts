import { execFile } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { connect } from 'node:tls';
import { fetchSite } from '../test/support/web-installs.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** sha256 of a PEM certificate's DER (the leaf: the first certificate of the text). */
export const sha256OfPem = (pem: string): string => createHash('sha256').update(new X509Certificate(pem).raw).digest('hex');

/**
 * The leaf a TLS handshake with SNI `name` on `ip:443` gets (sha256 of its
 * DER), on a new connection each time (no session reuse); null when the
 * handshake fails (nginx rejects an SNI it does not serve).
 */
export function servedLeaf(ip: string, name: string, timeoutMs = 5_000): Promise<string | null> {
  return new Promise((resolve) => {
    const socket = connect({ host: ip, port: 443, servername: name, rejectUnauthorized: false, timeout: timeoutMs });
    const done = (value: string | null) => {
      socket.destroy();
      resolve(value);
    };
    socket.once('secureConnect', () => {
      const raw = socket.getPeerCertificate().raw;
      done(raw ? createHash('sha256').update(raw).digest('hex') : null);
    });
    socket.once('timeout', () => done(null));
    socket.once('error', () => done(null));
  });
}

/** The same question asked with `openssl s_client -servername` (the check an operator runs): sha256 of the leaf it prints. */
export function opensslLeaf(ip: string, name: string): Promise<string | null> {
  return new Promise((resolve) => {
    const child = execFile('openssl', ['s_client', '-connect', `${ip}:443`, '-servername', name], { timeout: 10_000, encoding: 'utf8' }, (_error, stdout) => {
      const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(stdout ?? '')?.[0];
      resolve(pem ? sha256OfPem(pem) : null);
    });
    child.stdin?.end();
  });
}

/** Whether `hostname` answers its front page from PHP on `ip` (the sample codebase prints the hostname its config names). */
export async function answersFromPhp(ip: string, hostname: string): Promise<boolean> {
  try {
    const page = await fetchSite(ip, hostname, '/', { timeoutMs: 5_000 });
    return page.status === 200 && page.body.startsWith(`shop ${hostname}: `);
  } catch {
    return false;
  }
}

/** Polls `check` every `everyMs` until it is true on every IP at once; the time it took from `since` (ms, performance.now()). `failure` (asked now and then) ends the wait with its reason. */
export async function untilAll(
  ips: readonly string[],
  check: (ip: string) => Promise<boolean>,
  since: number,
  what: string,
  options: { everyMs?: number; boundMs?: number; failure?: () => Promise<string | null> } = {},
): Promise<number> {
  const bound = options.boundMs ?? 180_000;
  for (let round = 0; ; round++) {
    const answers = await Promise.all(ips.map(check));
    if (answers.every(Boolean)) return performance.now() - since;
    // The operation failed (its job dead): nothing more will come.
    const failure = round % 8 === 7 && options.failure ? await options.failure() : null;
    if (failure) throw new Error(`${what}: ${failure}`);
    if (performance.now() - since > bound) throw new Error(`${what}: not on ${ips.filter((_, i) => !answers[i]).join(', ')} after ${bound / 1000} s`);
    await sleep(options.everyMs ?? 25);
  }
}
