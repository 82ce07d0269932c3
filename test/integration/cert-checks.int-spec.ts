import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DomainError } from '@app/common';
import { checkPair, leafSha256, parseChain } from '@app/certificates';
import { CertCorpus } from '../support/cert-corpus.js';

/** The upload checks (node:crypto) over certificates made with the openssl CLI. */
describe('certificate checks (openssl-made corpus)', () => {
  let dir: string;
  let corpus: CertCorpus;
  const names = ['www.certs.test', 'secure.certs.test'];
  const code = (f: () => unknown) => {
    try {
      f();
      return 'passed';
    } catch (error) {
      if (error instanceof DomainError) return error.code;
      throw error;
    }
  };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'cert-checks-'));
    corpus = new CertCorpus(dir);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('passes a good chain (leaf with a wildcard SAN, intermediate) and answers its fingerprint and expiry', () => {
    const good = corpus.leaf('good', ['www.certs.test', '*.certs.test'], { days: 60 });
    const checked = checkPair(good.certificate, good.key, { names });
    expect(checked.sha256).toBe(leafSha256(parseChain(good.leaf)[0]!));
    expect(checked.notAfter.getTime()).toBeGreaterThan(Date.now() + 59 * 86_400_000);
    expect(parseChain(checked.chainPem)).toHaveLength(2);
    expect(checked.keyPem).toContain('BEGIN PRIVATE KEY');
  });

  it('refuses each bad pair with its code', () => {
    const good = corpus.leaf('good2', ['www.certs.test', '*.certs.test']);
    const other = corpus.leaf('other', ['www.certs.test', '*.certs.test']);
    const expired = corpus.leaf('expired', ['www.certs.test', '*.certs.test'], { from: new Date('2020-01-01T00:00:00Z'), to: new Date('2021-01-01T00:00:00Z') });
    const future = corpus.leaf('future', ['www.certs.test', '*.certs.test'], { from: new Date(Date.now() + 86_400_000), to: new Date(Date.now() + 90 * 86_400_000) });
    const soon = corpus.leaf('soon', ['www.certs.test', '*.certs.test'], { days: 3 });
    const apexOnly = corpus.leaf('apex', ['certs.test', '*.certs.test']);
    const deep = corpus.leaf('deep', ['*.test']);
    expect(code(() => checkPair(good.certificate, good.key, { names }))).toBe('passed');
    expect(code(() => checkPair('garbage', good.key, { names }))).toBe('CERT_NOT_PEM');
    expect(code(() => checkPair(`${good.certificate}trailing text`, good.key, { names }))).toBe('CERT_NOT_PEM');
    expect(code(() => checkPair(good.certificate.replace(/[A-Z]{10}/, 'AAAAAAAAAA'), good.key, { names }))).toBe('CERT_NOT_PEM');
    expect(code(() => checkPair(good.certificate, 'not a key', { names }))).toBe('CERT_NOT_PEM');
    expect(code(() => checkPair(good.certificate, good.leaf, { names }))).toBe('CERT_NOT_PEM');
    expect(code(() => checkPair(good.certificate, other.key, { names }))).toBe('CERT_KEY_MISMATCH');
    expect(code(() => checkPair(expired.certificate, expired.key, { names }))).toBe('CERT_EXPIRED');
    expect(code(() => checkPair(future.certificate, future.key, { names }))).toBe('CERT_EXPIRED');
    expect(code(() => checkPair(soon.certificate, soon.key, { names }))).toBe('CERT_EXPIRING_SOON');
    expect(code(() => checkPair(soon.certificate, soon.key, { names, allowExpiringSoon: true }))).toBe('passed');
    // A wildcard covers one label, never the apex nor two labels.
    expect(code(() => checkPair(apexOnly.certificate, apexOnly.key, { names: ['certs.test', 'shop.certs.test'] }))).toBe('passed');
    expect(code(() => checkPair(good.certificate, good.key, { names: ['certs.test'] }))).toBe('CERT_NAMES_NOT_COVERED');
    expect(code(() => checkPair(good.certificate, good.key, { names: ['a.b.certs.test'] }))).toBe('CERT_NAMES_NOT_COVERED');
    expect(code(() => checkPair(deep.certificate, deep.key, { names: ['www.certs.test'] }))).toBe('CERT_NAMES_NOT_COVERED');
    const reversed = corpus.intermediatePem() + good.leaf;
    expect(code(() => checkPair(reversed, good.key, { names }))).toBe('CERT_KEY_MISMATCH');
    expect(code(() => checkPair(good.leaf + good.leaf, good.key, { names }))).toBe('CERT_CHAIN_ORDER');
    expect(code(() => checkPair(good.leaf + other.leaf, good.key, { names }))).toBe('CERT_CHAIN_ORDER');
    try {
      checkPair(good.certificate, good.key, { names: ['www.other.test', 'www.certs.test'] });
    } catch (error) {
      expect((error as DomainError).details).toMatchObject({ names: ['www.other.test'] });
    }
  });
});
