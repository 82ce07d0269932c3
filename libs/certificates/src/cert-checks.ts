import { createHash, createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { certificateErrors as errors } from './certificates.errors.js';

/** A certificate expiring within this many days is refused unless the caller allows it. */
export const EXPIRING_SOON_DAYS = 7;
/** Most certificates a chain may hold (leaf and intermediates). */
export const MAX_CHAIN_LENGTH = 10;

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----\r?\n([A-Za-z0-9+/=\r\n]+?)-----END CERTIFICATE-----/g;
const KEY_BLOCK = /^-----BEGIN (PRIVATE KEY|RSA PRIVATE KEY|EC PRIVATE KEY)-----\r?\n[A-Za-z0-9+/=\r\n]+?-----END \1-----\s*$/;

/** A pair that passed every check, as it will be installed. */
export interface CheckedPair {
  /** The chain, leaf first, re-encoded (normalized PEM, one newline between blocks). */
  chainPem: string;
  /** The key as PKCS#8 PEM. */
  keyPem: string;
  /** sha256 (hex) of the leaf's DER: what a dispatcher must serve. */
  sha256: string;
  notBefore: Date;
  notAfter: Date;
  subjectAltName: string | null;
  issuer: string;
}

export interface PairCheckOptions {
  /** The names the site answers to (hostname, secure hostname): each must be covered by the SAN. */
  names: readonly string[];
  now?: Date;
  allowExpiringSoon?: boolean;
}

/** The certificates of a PEM chain text, in order; anything but certificate blocks and whitespace refuses it. */
export function parseChain(text: string): X509Certificate[] {
  if (typeof text !== 'string') throw errors.notPem('certificate');
  const certs: X509Certificate[] = [];
  let rest = text;
  for (const match of text.matchAll(CERT_BLOCK)) {
    rest = rest.replace(match[0], '');
    try {
      certs.push(new X509Certificate(match[0]));
    } catch {
      throw errors.notPem('certificate');
    }
  }
  if (certs.length === 0 || rest.trim() !== '') throw errors.notPem('certificate');
  if (certs.length > MAX_CHAIN_LENGTH) throw errors.notPem(`certificate chain (more than ${MAX_CHAIN_LENGTH} certificates)`);
  return certs;
}

/** The private key of a PEM text (one unencrypted key block). */
export function parseKey(text: string): KeyObject {
  if (typeof text !== 'string' || !KEY_BLOCK.test(text.trim() + '\n')) throw errors.notPem('key (one unencrypted PRIVATE KEY block)');
  try {
    return createPrivateKey({ key: text, format: 'pem' });
  } catch {
    throw errors.notPem('key');
  }
}

export const leafSha256 = (cert: X509Certificate): string => createHash('sha256').update(cert.raw).digest('hex');

/** Whether the certificate covers `name` as a TLS client matches it: SAN only, a wildcard for one label and never the apex. */
export function covers(cert: X509Certificate, name: string): boolean {
  return cert.checkHost(name, { subject: 'never', wildcards: true, partialWildcards: false, multiLabelWildcards: false, singleLabelSubdomains: false }) !== undefined;
}

/**
 * Every check of an uploaded (or issued) pair, before anything changes, in
 * the order a support person fixes them: PEM, key, validity, expiry soon,
 * names, chain order. Throws the first failing check's DomainError.
 */
export function checkPair(certificate: string, key: string, options: PairCheckOptions): CheckedPair {
  const now = options.now ?? new Date();
  const chain = parseChain(certificate);
  const privateKey = parseKey(key);
  const leaf = chain[0]!;
  if (!leaf.checkPrivateKey(privateKey)) throw errors.keyMismatch();
  chain.forEach((cert, i) => {
    const from = new Date(cert.validFrom);
    const to = new Date(cert.validTo);
    if (now < from || now > to) throw errors.expired(i === 0 ? 'certificate' : `chain certificate ${i + 1} (${cert.subject.replace(/\n/g, ', ')})`, from, to, now);
  });
  const notAfter = new Date(leaf.validTo);
  if (!options.allowExpiringSoon && notAfter.getTime() - now.getTime() < EXPIRING_SOON_DAYS * 86_400_000) throw errors.expiringSoon(notAfter, EXPIRING_SOON_DAYS);
  const missing = [...new Set(options.names)].filter((name) => !covers(leaf, name));
  if (missing.length > 0) throw errors.namesNotCovered(missing, leaf.subjectAltName ?? null);
  for (let i = 0; i + 1 < chain.length; i++) {
    const cert = chain[i]!;
    const issuer = chain[i + 1]!;
    if (!cert.checkIssued(issuer) || !cert.verify(issuer.publicKey)) throw errors.chainOrder(i, oneLine(cert.subject), oneLine(issuer.subject));
  }
  return {
    chainPem: chain.map((c) => c.toString().trim()).join('\n') + '\n',
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    sha256: leafSha256(leaf),
    notBefore: new Date(leaf.validFrom),
    notAfter,
    subjectAltName: leaf.subjectAltName ?? null,
    issuer: oneLine(leaf.issuer),
  };
}

const oneLine = (dn: string) => dn.replace(/\n/g, ', ');
