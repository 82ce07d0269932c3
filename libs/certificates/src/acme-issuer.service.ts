import { createHash, generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { join } from 'node:path';
import { Inject, Injectable } from '@nestjs/common';
import type * as AcmeClient from 'acme-client';
import type { Server } from '@app/catalog';
import { registerSecrets } from '@app/common';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { AcmeChallenges } from './acme-challenges.js';

/** One request to the CA; a whole order (directory, account, order, challenges, finalize, download). */
const REQUEST_TIMEOUT_MS = 30_000;
const ORDER_BOUND_MS = 5 * 60_000;

type Acme = typeof AcmeClient;
/** acme-client (with node-forge and its crypto) loaded at the first order: a fifth of a CLI run's start-up otherwise. */
let loaded: Promise<Acme> | null = null;
const loadAcme = (): Promise<Acme> => (loaded ??= import('acme-client'));

/** What the CA issued: the chain (leaf first) and the key made for it. */
export interface IssuedPair {
  certificate: string;
  key: string;
}

/**
 * Orders a certificate from the configured ACME CA with acme-client:
 * HTTP-01 only, the key authorization written on every dispatcher serving
 * the site (their nginx answers the CA) and removed after. The account key
 * is the engine's own, kept in VAR_DIR (0600) and reused: one account per
 * engine machine, not one per order (the CA limits new accounts).
 */
@Injectable()
export class AcmeIssuer {
  private client: AcmeClient.Client | null = null;

  constructor(
    private readonly challenges: AcmeChallenges,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
  ) {}

  async issue(names: readonly string[], dispatchers: readonly Server[], log: (line: string) => void): Promise<IssuedPair> {
    const acme = await loadAcme();
    const client = this.clientOf(acme);
    const [key, csr] = await acme.crypto.createCsr({ commonName: names[0]!, altNames: [...names] }, await acme.crypto.createPrivateEcdsaKey('P-256'));
    registerSecrets(key.toString());
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the ACME order for ${names.join(', ')} did not end within ${ORDER_BOUND_MS / 1000} s`)), ORDER_BOUND_MS);
    });
    const order = client.auto({
      csr,
      email: this.config.acme!.email,
      termsOfServiceAgreed: true,
      challengePriority: ['http-01'],
      // The pre-flight proved the names reach us; acme-client's own check would resolve them itself, through the system resolver.
      skipChallengeVerification: true,
      challengeCreateFn: async (authz, challenge, keyAuthorization) => {
        if (challenge.type !== 'http-01') throw new Error(`only http-01 is answered (offered ${challenge.type})`);
        await this.challenges.write(dispatchers, challenge.token, keyAuthorization);
        log(`challenge for ${authz.identifier.value} on ${dispatchers.map((s) => s.hostname).join(', ')}`);
      },
      challengeRemoveFn: async (_authz, challenge) => {
        await this.challenges.remove(dispatchers, challenge.token);
      },
    });
    // An order still running when the bound passes must not end as an unhandled rejection.
    order.catch(() => undefined);
    try {
      const certificate = await Promise.race([order, bound]);
      return { certificate, key: key.toString() };
    } finally {
      clearTimeout(timer);
    }
  }

  private clientOf(acme: Acme): AcmeClient.Client {
    const config = this.config.acme;
    if (!config) throw new Error('ACME is not configured');
    if (this.client) return this.client;
    // Every request to the CA has a timeout (acme-client's axios has none by default).
    acme.axios.defaults.timeout = REQUEST_TIMEOUT_MS;
    if (config.caFile) {
      // The CA's own TLS (a test CA's listener): trusted for acme-client's requests only.
      acme.axios.defaults.httpsAgent = new Agent({ ca: readFileSync(config.caFile) });
    }
    this.client = new acme.Client({ directoryUrl: config.directoryUrl, accountKey: this.accountKey(config.directoryUrl) });
    return this.client;
  }

  /** The engine's account key for this CA, made once (0600 under VAR_DIR/acme; created exclusively: two orders at once never write two). */
  private accountKey(directoryUrl: string): string {
    const dir = join(this.config.varDir, 'acme');
    const path = join(dir, `account-${createHash('sha256').update(directoryUrl).digest('hex').slice(0, 16)}.pem`);
    if (!existsSync(path)) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      try {
        writeFileSync(path, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
    }
    const key = readFileSync(path, 'utf8');
    registerSecrets(key);
    return key;
  }
}
