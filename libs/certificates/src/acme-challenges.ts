import { randomBytes } from 'node:crypto';
import { lookup, Resolver } from 'node:dns/promises';

import { request } from 'node:http';
import { posix } from 'node:path';
import { Inject, Injectable } from '@nestjs/common';
import type { Server } from '@app/catalog';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { ServerAccess } from '@app/hosts';
import { acmeChallengeDirOn } from '@app/webserver';

/** An ACME token is base64url (RFC 8555, 8.3); nothing else is ever written as a file name. */
const TOKEN = /^[A-Za-z0-9_-]{1,128}$/;
/** The port HTTP-01 validation always uses. */
export const HTTP01_PORT = 80;

export interface PreflightAnswer {
  name: string;
  addresses: string[];
  ok: boolean;
  problem: string | null;
}

/**
 * The HTTP-01 challenge files on the dispatchers serving a site (their
 * nginx serves `/.well-known/acme-challenge/` of every site from one
 * directory), and the pre-flight: a random token of ours fetched through
 * each name, as the CA will, before the CA is asked. A name that does not
 * reach our dispatchers fails here, without spending the CA's rate limits.
 */
@Injectable()
export class AcmeChallenges {
  constructor(
    private readonly access: ServerAccess,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
  ) {}

  async write(dispatchers: readonly Server[], token: string, content: string): Promise<void> {
    if (!TOKEN.test(token)) throw new Error(`refused ACME token ${JSON.stringify(token.slice(0, 40))}`);
    await Promise.all(
      dispatchers.map(async (server) => {
        const executor = this.access.executorFor(server);
        const dir = acmeChallengeDirOn(server);
        // World-readable: nginx's workers serve it; tokens and key authorizations are public by design.
        await executor.mkdir(server, dir, { mode: 0o755 });
        await executor.writeFile(server, posix.join(dir, token), content, { mode: 0o644 });
      }),
    );
  }

  async remove(dispatchers: readonly Server[], token: string): Promise<void> {
    if (!TOKEN.test(token)) return;
    await Promise.allSettled(dispatchers.map((server) => this.access.executorFor(server).remove(server, posix.join(acmeChallengeDirOn(server), token))));
  }

  /** Each name resolved (the configured resolver, else the system's) and a token of ours fetched through it on port 80. */
  async preflight(dispatchers: readonly Server[], names: readonly string[]): Promise<PreflightAnswer[]> {
    const token = `preflight-${randomBytes(16).toString('hex')}`;
    const content = randomBytes(24).toString('base64url');
    await this.write(dispatchers, token, content);
    try {
      return await Promise.all(names.map((name) => this.fetchThrough(name, token, content)));
    } finally {
      await this.remove(dispatchers, token);
    }
  }

  private async fetchThrough(name: string, token: string, content: string): Promise<PreflightAnswer> {
    let addresses: string[];
    try {
      addresses = await this.resolve(name);
    } catch (error) {
      return { name, addresses: [], ok: false, problem: `${name} does not resolve: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}` };
    }
    if (addresses.length === 0) return { name, addresses, ok: false, problem: `${name} has no A record` };
    // Every address: the CA may pick any of them.
    for (const ip of addresses) {
      const answer = await fetchText(ip, name, `/.well-known/acme-challenge/${token}`);
      if (answer.status !== 200 || answer.body.trim() !== content) {
        return { name, addresses, ok: false, problem: `${name} (${ip}) does not reach the install's dispatchers: ${answer.status === 0 ? answer.body : `HTTP ${answer.status} for the pre-flight token`}` };
      }
    }
    return { name, addresses, ok: true, problem: null };
  }

  private async resolve(name: string): Promise<string[]> {
    const at = this.config.acme?.preflightResolver;
    if (!at) return (await lookup(name, { all: true, family: 4 })).map((a) => a.address);
    const resolver = new Resolver({ timeout: 3_000, tries: 2 });
    resolver.setServers([at]);
    return resolver.resolve4(name);
  }
}

function fetchText(ip: string, host: string, path: string, timeoutMs = 5_000): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = request({ host: ip, port: HTTP01_PORT, path, method: 'GET', agent: false, timeout: timeoutMs, headers: { Host: host, 'User-Agent': 'shop-engine-acme-preflight' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        if (body.length < 4096) body += chunk;
      });
      res.once('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.once('error', (error) => resolve({ status: 0, body: error.message }));
    });
    req.once('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.once('error', (error: NodeJS.ErrnoException) => resolve({ status: 0, body: error.code ?? error.message }));
    req.end();
  });
}
