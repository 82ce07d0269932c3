import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { Injectable } from '@nestjs/common';
import { DataSource, In } from 'typeorm';
import { Install, InstallServer, InstallSite, InstallSiteIp, Server, ServerIp, SharedCodeGroup } from '@app/catalog';
import { parseManifest } from '@app/codebases';
import { PROBE_HEADER } from './render.js';

/** One request the probe makes: a site, through one dispatcher, on one of its IPs there. */
export interface ProbeTarget {
  dispatcher: string;
  hostname: string;
  ip: string;
  port: number;
  path: string;
}

export interface ProbeAnswer extends ProbeTarget {
  ok: boolean;
  /** HTTP status, or 0 when no answer came (refused, timed out). */
  status: number;
  /** Why it does not count as the shop answering (null when ok). */
  problem: string | null;
  ms: number;
}

export interface ProbeOptions {
  /** Give up after this long (default 30 s): the answers of the last round are returned. */
  boundMs?: number;
  /** First pause between rounds, doubled each round up to 2 s (default 100 ms). */
  firstDelayMs?: number;
  /** Per request (default 5 s). */
  requestTimeoutMs?: number;
  signal?: AbortSignal;
  log?: (line: string) => void;
}

export interface ProbeReport {
  ok: boolean;
  answers: ProbeAnswer[];
  rounds: number;
}

/** What nginx on a dispatcher listens on for shops (the embedded default may use a high port). */
export const httpPortOf = (server: Server): number => server.httpPort ?? 80;

/**
 * Proves that an install's sites answer: each site is requested through
 * each dispatcher that serves it (that dispatcher's IP for the site, the
 * site's Host, the manifest's probe path or the front page) and must be
 * answered by PHP with 2xx or 3xx. PHP's answer is told apart from a
 * static file or an nginx error page by the probe header, which only the
 * install's PHP locations echo back. Targets that failed are asked again
 * with backoff until all answer or the bound is reached.
 */
@Injectable()
export class SiteProbe {
  constructor(private readonly dataSource: DataSource) {}

  /** The requests proving the install answers, on its dispatchers that are not down. */
  async targets(installId: number): Promise<ProbeTarget[]> {
    const m = this.dataSource.manager;
    const install = await m.findOneByOrFail(Install, { id: installId });
    const group = install.sharedCodeGroupId === null ? null : await m.findOneBy(SharedCodeGroup, { id: install.sharedCodeGroupId });
    const manifest = group?.manifest ? await parseManifest(group.manifest) : null;
    const memberships = await m.find(InstallServer, { where: { installId } });
    const servers = memberships.length ? await m.find(Server, { where: { id: In(memberships.map((r) => r.serverId)) } }) : [];
    const dispatchers = new Map(servers.filter((s) => s.roles.includes('dispatcher') && s.state !== 'down').map((s) => [s.id, s]));
    const sites = await m.find(InstallSite, { where: { installId }, order: { id: 'ASC' } });
    if (sites.length === 0) return [];
    const ips = await m
      .createQueryBuilder(InstallSiteIp, 'h')
      .innerJoin(ServerIp, 'ip', 'ip.id = h.serverIpId')
      .select(['h.installSiteId AS siteId', 'h.serverId AS serverId', 'ip.ip AS ip'])
      .where('h.installSiteId IN (:...ids)', { ids: sites.map((s) => s.id) })
      .orderBy('h.id', 'ASC')
      .getRawMany<{ siteId: number; serverId: number; ip: string }>();
    const targets: ProbeTarget[] = [];
    for (const site of sites) {
      for (const row of ips.filter((r) => Number(r.siteId) === site.id)) {
        const dispatcher = dispatchers.get(Number(row.serverId));
        if (!dispatcher) continue;
        targets.push({ dispatcher: dispatcher.hostname, hostname: site.hostname, ip: row.ip, port: httpPortOf(dispatcher), path: manifest?.web.probePath ?? site.relUrl });
      }
    }
    return targets;
  }

  /** Probes the install until every target answers or the bound is reached. */
  async probeInstall(installId: number, options: ProbeOptions = {}): Promise<ProbeReport> {
    return this.probe(await this.targets(installId), options);
  }

  async probe(targets: readonly ProbeTarget[], options: ProbeOptions = {}): Promise<ProbeReport> {
    const bound = Date.now() + (options.boundMs ?? 30_000);
    let delay = options.firstDelayMs ?? 100;
    const answers = new Map<ProbeTarget, ProbeAnswer>();
    let waiting = [...targets];
    let rounds = 0;
    while (waiting.length > 0) {
      rounds++;
      const round = await Promise.all(waiting.map((t) => ask(t, options.requestTimeoutMs ?? 5_000)));
      round.forEach((answer, i) => answers.set(waiting[i]!, answer));
      waiting = waiting.filter((t) => !answers.get(t)!.ok);
      if (waiting.length === 0 || Date.now() + delay > bound || options.signal?.aborted) break;
      options.log?.(`waiting for ${waiting.length} of ${targets.length}: ${waiting.map((t) => describe(answers.get(t)!)).join('; ')}`);
      await sleep(delay, options.signal);
      delay = Math.min(delay * 2, 2_000);
    }
    const all = targets.map((t) => answers.get(t)!);
    return { ok: all.every((a) => a.ok), answers: all, rounds };
  }
}

/**
 * Asks each target once (no retry), at most `concurrency` at a time: a
 * health round over thousands of sites, bounded in the connections it opens.
 * Answers in the targets' order.
 */
export async function probeEach(targets: readonly ProbeTarget[], options: { concurrency?: number; requestTimeoutMs?: number; signal?: AbortSignal } = {}): Promise<ProbeAnswer[]> {
  const answers: ProbeAnswer[] = new Array(targets.length);
  let next = 0;
  const worker = async () => {
    while (next < targets.length && !options.signal?.aborted) {
      const i = next++;
      answers[i] = await ask(targets[i]!, options.requestTimeoutMs ?? 5_000);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(options.concurrency ?? 32, targets.length)) }, worker));
  return answers;
}

/** One answer, for logs and errors: `shop.example.com via dispatch1 (10.0.0.1:80/): HTTP 404 not from PHP`. */
export function describe(answer: ProbeAnswer): string {
  const where = `${answer.hostname} via ${answer.dispatcher} (${answer.ip}:${answer.port}${answer.path})`;
  return answer.ok ? `${where}: HTTP ${answer.status} from PHP in ${answer.ms} ms` : `${where}: ${answer.problem}`;
}

function ask(target: ProbeTarget, timeoutMs: number): Promise<ProbeAnswer> {
  const nonce = randomBytes(16).toString('hex');
  const started = Date.now();
  const done = (status: number, problem: string | null): ProbeAnswer => ({ ...target, ok: problem === null, status, problem, ms: Date.now() - started });
  return new Promise((resolve) => {
    // A new connection each time (no keep-alive): what is asked is whether nginx, as loaded now, serves the site.
    const req = request(
      { host: target.ip, port: target.port, path: target.path, method: 'GET', agent: false, timeout: timeoutMs, headers: { Host: target.hostname, [PROBE_HEADER]: nonce, 'User-Agent': 'shop-engine-probe' } },
      (res) => {
        res.resume();
        const status = res.statusCode ?? 0;
        const fromPhp = res.headers[PROBE_HEADER.toLowerCase()] === nonce;
        res.once('end', () => {
          if (status >= 500) resolve(done(status, `HTTP ${status}${fromPhp ? ' from PHP' : ' (PHP unreachable or failing)'}`));
          else if (!fromPhp) resolve(done(status, `HTTP ${status} not from PHP (a static file, an nginx page or another site)`));
          else if (status >= 400) resolve(done(status, `HTTP ${status} from PHP`));
          else resolve(done(status, null));
        });
        res.once('error', (error) => resolve(done(status, `answer cut: ${error.message}`)));
      },
    );
    req.once('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.once('error', (error) => resolve(done(0, (error as NodeJS.ErrnoException).code ?? error.message)));
    req.end();
  });
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}
