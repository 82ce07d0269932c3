import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A certificate and its key as PEM texts (the chain: leaf first). */
export interface PemPair {
  certificate: string;
  key: string;
  /** The leaf alone. */
  leaf: string;
}

/**
 * Certificates made with the `openssl` CLI for the upload tests: a root CA
 * (EC P-256), an intermediate signed by it, and leaves the intermediate
 * signs with the names and validity asked for (`openssl ca`, the only CLI
 * way to back-date one). Everything under `dir`.
 */
export class CertCorpus {
  readonly root: { cert: string; key: string };
  readonly intermediate: { cert: string; key: string };
  private serial = 1;

  constructor(private readonly dir: string) {
    mkdirSync(join(dir, 'newcerts'), { recursive: true });
    writeFileSync(join(dir, 'index.txt'), '');
    writeFileSync(join(dir, 'index.txt.attr'), 'unique_subject = no\n');
    writeFileSync(join(dir, 'ca.cnf'), CA_CONFIG(dir));
    this.root = this.selfSigned('root', 'Certs Test Root CA');
    const key = this.newKey('intermediate', 'ec');
    this.openssl(['req', '-new', '-key', key, '-subj', '/CN=Certs Test Intermediate', '-out', join(dir, 'intermediate.csr')]);
    writeFileSync(join(dir, 'ca-ext.cnf'), 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n');
    this.openssl(['x509', '-req', '-in', join(dir, 'intermediate.csr'), '-CA', this.root.cert, '-CAkey', this.root.key, '-set_serial', '1000', '-days', '3650', '-extfile', join(dir, 'ca-ext.cnf'), '-out', join(dir, 'intermediate.crt')]);
    this.intermediate = { cert: join(dir, 'intermediate.crt'), key };
  }

  /**
   * A leaf for `names` (SAN DNS entries) signed by the intermediate, with its
   * chain (leaf, intermediate). Validity: `days` from now, or `from`/`to`.
   */
  leaf(name: string, names: readonly string[], validity: { days?: number; from?: Date; to?: Date } = {}, keyType: 'ec' | 'rsa2048' = 'ec'): PemPair & { files: { cert: string; key: string; chain: string } } {
    const key = this.newKey(name, keyType);
    const csr = join(this.dir, `${name}.csr`);
    this.openssl(['req', '-new', '-key', key, '-subj', `/CN=${names[0] ?? name}`, '-addext', `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}`, '-out', csr]);
    const from = validity.from ?? new Date(Date.now() - 60_000);
    const to = validity.to ?? new Date(Date.now() + (validity.days ?? 90) * 86_400_000);
    const cert = join(this.dir, `${name}.crt`);
    writeFileSync(join(this.dir, 'serial'), `${(this.serial++ + 0x1000).toString(16).toUpperCase().padStart(4, '0')}\n`);
    this.openssl(['ca', '-batch', '-notext', '-config', join(this.dir, 'ca.cnf'), '-cert', this.intermediate.cert, '-keyfile', this.intermediate.key, '-in', csr, '-out', cert, '-startdate', asn1Time(from), '-enddate', asn1Time(to)]);
    const leaf = readFileSync(cert, 'utf8');
    const chain = leaf + readFileSync(this.intermediate.cert, 'utf8');
    writeFileSync(join(this.dir, `${name}.chain.pem`), chain);
    return { certificate: chain, key: readFileSync(key, 'utf8'), leaf, files: { cert, key, chain: join(this.dir, `${name}.chain.pem`) } };
  }

  /** The intermediate's PEM (the second of every chain). */
  intermediatePem(): string {
    return readFileSync(this.intermediate.cert, 'utf8');
  }

  private selfSigned(name: string, cn: string): { cert: string; key: string } {
    const key = this.newKey(name, 'ec');
    const cert = join(this.dir, `${name}.crt`);
    this.openssl(['req', '-x509', '-new', '-key', key, '-subj', `/CN=${cn}`, '-days', '3650', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', cert]);
    return { cert, key };
  }

  private newKey(name: string, type: 'ec' | 'rsa2048'): string {
    const path = join(this.dir, `${name}.key`);
    this.openssl(type === 'ec' ? ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', path] : ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', path]);
    return path;
  }

  private openssl(args: string[]): void {
    execFileSync('openssl', args, { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'] });
  }
}

/** `openssl ca`'s date form (GeneralizedTime). */
function asn1Time(date: Date): string {
  return date.toISOString().replace(/[-:T]/g, '').replace(/\.\d{3}Z$/, 'Z');
}

const CA_CONFIG = (dir: string) => `[ ca ]
default_ca = ca_default
[ ca_default ]
dir = ${dir}
database = ${dir}/index.txt
new_certs_dir = ${dir}/newcerts
serial = ${dir}/serial
default_md = sha256
policy = policy_any
copy_extensions = copy
unique_subject = no
x509_extensions = leaf_ext
[ policy_any ]
commonName = supplied
[ leaf_ext ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
authorityKeyIdentifier = keyid
`;
