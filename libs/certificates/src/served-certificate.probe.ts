import { createHash } from 'node:crypto';
import { connect } from 'node:tls';
import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { InstallSite, InstallSiteIp, Server, ServerIp } from '@app/catalog';

/** One TLS handshake the probe makes: a site's name (SNI) on one of its IPs on one dispatcher. */
export interface ServedTarget {
  dispatcher: string;
  hostname: string;
  ip: string;
  port: number;
}

export interface ServedAnswer extends ServedTarget {
  /** sha256 of the leaf served (null: no handshake). */
  sha256: string | null;
  notAfter: string | null;
  problem: string | null;
}

/**
 * What certificate each dispatcher actually serves for a site: a TLS
 * handshake with the site's name as SNI to the site's IP on that
 * dispatcher, the leaf's sha256 compared with the one expected. Asked again
 * with backoff until all match or the bound passes.
 */
@Injectable()
export class ServedCertificateProbe {
  constructor(private readonly dataSource: DataSource) {}

  /** Every (dispatcher, IP, name) the site answers TLS on, on dispatchers that are up. */
  async targets(site: InstallSite, dispatchers: readonly Server[]): Promise<ServedTarget[]> {
    const up = new Map(dispatchers.filter((s) => s.state !== 'down').map((s) => [s.id, s]));
    if (up.size === 0) return [];
    const rows = await this.dataSource
      .createQueryBuilder(InstallSiteIp, 'h')
      .innerJoin(ServerIp, 'ip', 'ip.id = h.serverIpId')
      .select(['h.serverId AS serverId', 'ip.ip AS ip'])
      .where('h.installSiteId = :siteId', { siteId: site.id })
      .andWhere('h.serverId IN (:...ids)', { ids: [...up.keys()] })
      .orderBy('h.id', 'ASC')
      .getRawMany<{ serverId: number; ip: string }>();
    const names = [...new Set([site.hostname, ...(site.secureHostname ? [site.secureHostname] : [])])];
    return rows.flatMap((r) => {
      const server = up.get(Number(r.serverId))!;
      return names.map((hostname) => ({ dispatcher: server.hostname, hostname, ip: r.ip, port: server.httpsPort ?? 443 }));
    });
  }

  async expect(targets: readonly ServedTarget[], sha256: string, options: { boundMs?: number; signal?: AbortSignal; log?: (line: string) => void } = {}): Promise<{ ok: boolean; answers: ServedAnswer[] }> {
    const bound = Date.now() + (options.boundMs ?? 20_000);
    let delay = 100;
    let answers: ServedAnswer[] = [];
    for (;;) {
      answers = await Promise.all(targets.map((t) => servedBy(t)));
      const wrong = answers.filter((a) => a.sha256 !== sha256);
      if (wrong.length === 0 || Date.now() + delay > bound || options.signal?.aborted) return { ok: wrong.length === 0, answers };
      options.log?.(`waiting for ${wrong.length} of ${answers.length}: ${wrong.map(describeServed).join('; ')}`);
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 2_000);
    }
  }
}

export function describeServed(a: ServedAnswer): string {
  return `${a.hostname} via ${a.dispatcher} (${a.ip}:${a.port}): ${a.problem ?? `serves ${a.sha256!.slice(0, 16)} (until ${a.notAfter})`}`;
}

/** The leaf a TLS server presents for `hostname` (SNI), not verified: what is served is the question, not whether it is trusted. */
export function servedBy(target: ServedTarget, timeoutMs = 5_000): Promise<ServedAnswer> {
  return new Promise((resolve) => {
    const done = (sha256: string | null, notAfter: string | null, problem: string | null) => resolve({ ...target, sha256, notAfter, problem });
    const socket = connect({ host: target.ip, port: target.port, servername: target.hostname, rejectUnauthorized: false, timeout: timeoutMs });
    socket.once('secureConnect', () => {
      const peer = socket.getPeerCertificate(false);
      socket.destroy();
      if (!peer?.raw) done(null, null, 'no certificate presented');
      else done(createHash('sha256').update(peer.raw).digest('hex'), new Date(peer.valid_to).toISOString(), null);
    });
    socket.once('timeout', () => socket.destroy(new Error(`no handshake within ${timeoutMs} ms`)));
    socket.once('error', (error: NodeJS.ErrnoException) => done(null, null, error.code ?? error.message));
  });
}

