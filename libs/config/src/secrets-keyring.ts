import { createHash } from 'node:crypto';
import { inspect } from 'node:util';

/**
 * A key's id as written into each ciphertext: a short digest of the key,
 * so a stored secret names the key it needs without revealing anything of it.
 */
export function secretsKeyId(key: Buffer): string {
  return createHash('sha256').update('shop-engine secrets key id\0').update(key).digest('base64url').slice(0, 8);
}

/**
 * The keys that protect secrets at rest (SECRETS_KEY, SECRETS_KEY_PREVIOUS):
 * new ciphertexts always use the current key; the previous ones still
 * decrypt what they encrypted until `secrets:rotate` has re-encrypted it.
 * It never prints a key (logs, JSON, inspection show the key ids only).
 */
export class SecretsKeyring {
  readonly currentId: string;
  readonly #current: Buffer;
  readonly #byId = new Map<string, Buffer>();

  constructor(current: Buffer, previous: readonly Buffer[] = []) {
    for (const key of [current, ...previous]) {
      if (key.length !== 32) throw new Error('a secrets key must be 32 bytes');
      const id = secretsKeyId(key);
      if (!this.#byId.has(id)) this.#byId.set(id, Buffer.from(key));
    }
    this.#current = Buffer.from(current);
    this.currentId = secretsKeyId(current);
  }

  /** A keyring of one key: what callers holding a bare key (tests, tools) get. */
  static of(key: Buffer | SecretsKeyring): SecretsKeyring {
    return key instanceof SecretsKeyring ? key : new SecretsKeyring(key);
  }

  /** The key new ciphertexts are made with. */
  get current(): Buffer {
    return this.#current;
  }

  /** The ids of the previous keys still accepted for decryption. */
  get previousIds(): string[] {
    return [...this.#byId.keys()].filter((id) => id !== this.currentId);
  }

  /** The key with this id, if the keyring holds it. */
  key(id: string): Buffer | undefined {
    return this.#byId.get(id);
  }

  /** Every key, the current one first. */
  keys(): Buffer[] {
    return [this.#current, ...this.previousIds.map((id) => this.#byId.get(id)!)];
  }

  toJSON(): { current: string; previous: string[] } {
    return { current: this.currentId, previous: this.previousIds };
  }

  [inspect.custom](): string {
    return `SecretsKeyring { current: ${this.currentId}, previous: [${this.previousIds.join(', ')}] }`;
  }
}
