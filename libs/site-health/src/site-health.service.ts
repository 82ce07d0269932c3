import { Inject, Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, In, IsNull } from 'typeorm';
import { Install, InstallServer, Server, SharedCodeGroup, SiteHealthState, SiteIncident } from '@app/catalog';
import { parseManifest } from '@app/codebases';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { ServerAccess } from '@app/hosts';
import { emptyCaches } from '@app/installs';
import { MailService } from '@app/mail';
import { sqlDialect } from '@app/queue';
import { describe as describeAnswer, httpPortOf, probeEach, type ProbeTarget } from '@app/webserver';

/** Rounds in a row a site must fail before an incident opens (one bad minute is not an incident). */
export const FAILED_ROUNDS_FOR_INCIDENT = 3;
/** Requests in flight at once in a round: bounded whatever the number of sites. */
export const HEALTH_CONCURRENCY = 32;
const REQUEST_TIMEOUT_MS = 5_000;

export interface HealthRound {
  installs: number;
  requests: number;
  failing: number;
  opened: number[];
  closed: number[];
  ms: number;
}

interface TargetRow {
  installId: number;
  hostname: string;
  relUrl: string;
  groupId: number | null;
  ip: string;
  serverId: number;
}

/**
 * The seed's cron_slave_widgets: every live install's sites requested
 * through each dispatcher serving them (as the build's probe does: PHP must
 * answer 2xx/3xx with the probe header), once per round, a bounded number at
 * a time. An install failing FAILED_ROUNDS_FOR_INCIDENT rounds in a row opens
 * an incident: its caches are emptied and operations mailed, once; the round
 * it answers again closes it, mailed once. Rows exist only for failing
 * installs, so a round over thousands of healthy sites writes nothing.
 */
@Injectable()
export class SiteHealth {
  private readonly logger = new Logger('SiteHealth');

  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly access: ServerAccess,
    private readonly mail: MailService,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
  ) {}

  /** The requests of one round: every live install's sites, through each of its dispatchers that is not down. */
  async targets(): Promise<Map<number, ProbeTarget[]>> {
    const rows = await this.dataSource.query(
      `SELECT i.id AS installId, s.hostname AS hostname, s.rel_url AS relUrl, i.shared_code_group_id AS groupId, ip.ip AS ip, h.server_id AS serverId
         FROM installs i
         JOIN install_sites s ON s.install_id = i.id
         JOIN install_site_ips h ON h.install_site_id = s.id
         JOIN server_ips ip ON ip.id = h.server_ip_id
       WHERE i.status = 'live'
       ORDER BY i.id, s.id, h.id`,
    ) as TargetRow[];
    const servers = new Map((await this.dataSource.getRepository(Server).find()).filter((s) => s.roles.includes('dispatcher') && s.state !== 'down').map((s) => [s.id, s]));
    const probePaths = await this.probePaths([...new Set(rows.map((r) => r.groupId).filter((g): g is number => g !== null))]);
    const byInstall = new Map<number, ProbeTarget[]>();
    for (const row of rows) {
      const dispatcher = servers.get(Number(row.serverId));
      if (!dispatcher) continue;
      const installId = Number(row.installId);
      const list = byInstall.get(installId) ?? [];
      list.push({ dispatcher: dispatcher.hostname, hostname: row.hostname, ip: row.ip, port: httpPortOf(dispatcher), path: (row.groupId !== null ? probePaths.get(Number(row.groupId)) : undefined) ?? row.relUrl });
      byInstall.set(installId, list);
    }
    return byInstall;
  }

  /** One round: probe, count, open and close incidents. */
  async round(options: { signal?: AbortSignal; log?: (line: string) => void; concurrency?: number } = {}): Promise<HealthRound> {
    const started = Date.now();
    const byInstall = await this.targets();
    const all = [...byInstall.values()].flat();
    const answers = await probeEach(all, { concurrency: options.concurrency ?? HEALTH_CONCURRENCY, requestTimeoutMs: REQUEST_TIMEOUT_MS, signal: options.signal });
    const failed = new Map<number, string>();
    let i = 0;
    for (const [installId, targets] of byInstall) {
      const mine = answers.slice(i, i + targets.length);
      i += targets.length;
      const bad = mine.find((a) => a === undefined || !a.ok);
      if (bad !== undefined || mine.length < targets.length) failed.set(installId, bad ? describeAnswer(bad) : 'not probed (the round was stopped)');
    }
    const round: HealthRound = { installs: byInstall.size, requests: all.length, failing: failed.size, opened: [], closed: [], ms: 0 };
    await this.record(byInstall, failed, round, options.log ?? (() => undefined));
    round.ms = Date.now() - started;
    options.log?.(`${round.installs} live install(s), ${round.requests} request(s), ${round.failing} failing; opened ${round.opened.length}, closed ${round.closed.length} incident(s) in ${round.ms} ms`);
    return round;
  }

  private async record(byInstall: Map<number, ProbeTarget[]>, failed: Map<number, string>, round: HealthRound, log: (line: string) => void): Promise<void> {
    const states = this.dataSource.getRepository(SiteHealthState);
    const incidents = this.dataSource.getRepository(SiteIncident);
    const now = new Date();
    const tracked = await states.find();
    // Answering again: a failing streak ends; an open incident closes (mailed once).
    for (const state of tracked) {
      if (failed.has(state.installId)) continue;
      if (!byInstall.has(state.installId)) {
        // No longer live (removed, failed): nothing to watch; an open incident closes without a "recovered" mail.
        if (state.openIncidentId !== null) await incidents.update({ id: state.openIncidentId, closedAt: IsNull() }, { closedAt: now, lastProblem: 'no longer live' });
        await states.delete({ id: state.id });
        continue;
      }
      if (state.openIncidentId !== null) {
        const closed = await incidents.update({ id: state.openIncidentId, closedAt: IsNull() }, { closedAt: now });
        if ((closed.affected ?? 0) > 0) {
          round.closed.push(state.installId);
          await this.mailOnce(state.openIncidentId, 'closed', now);
          log(`install ${state.installId} answers again: incident ${state.openIncidentId} closed`);
        }
      }
      await states.delete({ id: state.id });
    }
    const known = new Map(tracked.map((s) => [s.installId, s]));
    for (const [installId, problem] of failed) {
      const state = known.get(installId) ?? (await this.stateFor(installId));
      const failures = state.failures + 1;
      await states.update({ id: state.id }, { failures, lastProblem: problem.slice(0, 1024), lastCheckedAt: now });
      if (state.openIncidentId !== null) {
        await incidents.update({ id: state.openIncidentId }, { lastProblem: problem.slice(0, 1024), failedRounds: () => 'failed_rounds + 1' });
        continue;
      }
      if (failures < FAILED_ROUNDS_FOR_INCIDENT) continue;
      const incident = await incidents.save(incidents.create({ installId, openedAt: now, problem: problem.slice(0, 1024), lastProblem: problem.slice(0, 1024), failedRounds: failures }));
      // Claimed by the conditional update: one incident per streak even with two rounds at once.
      const claimed = await states.update({ id: state.id, openIncidentId: IsNull() }, { openIncidentId: incident.id });
      if ((claimed.affected ?? 0) === 0) {
        await incidents.delete({ id: incident.id });
        continue;
      }
      round.opened.push(installId);
      log(`install ${installId} failed ${failures} rounds in a row: incident ${incident.id} opened (${problem})`);
      await this.clearCaches(installId, incident.id, log);
      await this.mailOnce(incident.id, 'opened', now);
    }
  }

  private async stateFor(installId: number): Promise<SiteHealthState> {
    const states = this.dataSource.getRepository(SiteHealthState);
    try {
      await states.insert({ installId, failures: 0 });
    } catch (error) {
      // Another round made it meanwhile; any other failure is this round's.
      if (!sqlDialect(this.dataSource).isDuplicateKey(error)) throw error;
    }
    return states.findOneByOrFail({ installId });
  }

  /** The manifest's cache directories emptied on every server holding the install's home (a stale cache is a common cause). */
  private async clearCaches(installId: number, incidentId: number, log: (line: string) => void): Promise<void> {
    try {
      const install = await this.dataSource.getRepository(Install).findOneByOrFail({ id: installId });
      const group = install.sharedCodeGroupId === null ? null : await this.dataSource.getRepository(SharedCodeGroup).findOneBy({ id: install.sharedCodeGroupId });
      const paths = group?.manifest ? ((await parseManifest(group.manifest)).cachePaths ?? []) : [];
      if (paths.length === 0) return;
      const memberships = await this.dataSource.getRepository(InstallServer).find({ where: { installId } });
      const servers = memberships.length ? await this.dataSource.getRepository(Server).find({ where: { id: In(memberships.map((m) => m.serverId)) } }) : [];
      for (const server of servers.filter((s) => s.state !== 'down')) await emptyCaches(this.access, server, install, paths);
      await this.dataSource.getRepository(SiteIncident).update({ id: incidentId }, { cachesCleared: true });
      log(`install ${installId}: emptied ${paths.join(', ')} on ${servers.map((s) => s.hostname).join(', ')}`);
    } catch (error) {
      log(`install ${installId}: its caches could not be emptied: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  /** One mail per incident and event, claimed in the catalog first (two engines never both mail it). */
  private async mailOnce(incidentId: number, event: 'opened' | 'closed', now: Date): Promise<void> {
    const incidents = this.dataSource.getRepository(SiteIncident);
    const claimed = await incidents.update(event === 'opened' ? { id: incidentId, mailedOpened: false } : { id: incidentId, mailedClosed: false }, event === 'opened' ? { mailedOpened: true } : { mailedClosed: true });
    if ((claimed.affected ?? 0) === 0) return;
    const incident = await incidents.findOneByOrFail({ id: incidentId });
    const install = await this.dataSource.getRepository(Install).findOneBy({ id: incident.installId });
    const name = install ? `install ${install.id} (${install.fsName})` : `install ${incident.installId}`;
    const subject = event === 'opened' ? `[shop hosting] site down: ${name}` : `[shop hosting] site back: ${name}`;
    const text =
      event === 'opened'
        ? `${name} has failed its health probes ${incident.failedRounds} rounds in a row since ${incident.openedAt.toISOString()}.\n\n${incident.problem}\n\n${incident.cachesCleared ? 'Its cache directories were emptied.' : 'Its caches were not emptied (none declared, or it failed).'}\nIncident ${incident.id}: GET /v1/site-incidents?installId=${incident.installId}\n`
        : `${name} answers again since ${now.toISOString()} (down since ${incident.openedAt.toISOString()}; last problem: ${incident.lastProblem ?? incident.problem}).\nIncident ${incident.id} is closed.\n`;
    if (!this.config.opsEmail) {
      this.logger.warn(`OPS_EMAIL is not set: not mailed: ${subject}`);
      return;
    }
    try {
      await this.mail.send({ to: this.config.opsEmail, subject, text, messageId: `<site-incident-${incident.id}-${event}@shop-engine>` });
    } catch (error) {
      // Given back, so the next round mails it.
      await incidents.update({ id: incidentId }, event === 'opened' ? { mailedOpened: false } : { mailedClosed: false });
      throw error;
    }
  }

  private async probePaths(groupIds: number[]): Promise<Map<number, string>> {
    const paths = new Map<number, string>();
    if (groupIds.length === 0) return paths;
    for (const group of await this.dataSource.getRepository(SharedCodeGroup).find({ where: { id: In(groupIds) } })) {
      if (!group.manifest) continue;
      try {
        const probePath = (await parseManifest(group.manifest)).web.probePath;
        if (probePath) paths.set(group.id, probePath);
      } catch (error) {
        // A manifest that does not parse: the site's own path, and said (the group's other problems show elsewhere too).
        this.logger.warn(`code group ${group.name}: its manifest does not parse (${error instanceof Error ? error.message : String(error)}); its sites are probed at their own path`);
      }
    }
    return paths;
  }
}
