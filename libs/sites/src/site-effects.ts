import { posix } from 'node:path';
import { Inject, Injectable } from '@nestjs/common';
import { DataSource, In } from 'typeorm';
import { DatabaseUpdate, DispatcherConfig, InstallSite, type Install, type Server } from '@app/catalog';
import { renderTemplate } from '@app/codebases';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { prepareSql, splitSql, sqlChecksum, TenantDatabases } from '@app/databases';
import { SiteDns, type DnsChange, type DnsLog } from '@app/dns';
import { ServerAccess } from '@app/hosts';
import { checkoutOn, decryptSecret, homeOn, InstallBuildSteps, InstallValues, OPTIONAL_PREFIXES, siteValues, type BuildContext } from '@app/installs';
import { JobDeferredError } from '@app/queue';
import type { StepIO } from '@app/saga';
import { templatesOf, type SqlEvent } from './site-rules.js';
import { describe as describeAnswer, DispatcherFiles, NginxRebuilds, SiteProbe } from '@app/webserver';

/** How long a vhost wait runs within one run before it defers its job (and frees the worker slot). */
const VHOST_WAIT_IN_RUN_MS = 5_000;
const VHOST_RECHECK_MS = 1_000;
/** How long the probe asks a site (with backoff) before the operation gives up on it. */
const PROBE_BOUND_MS = 30_000;

/** A site's hostnames and paths as an event's template sees them. */
export interface SiteAddress {
  hostname: string;
  secureHostname: string | null;
  relUrl: string;
  secureRelUrl: string;
  sslPemPath: string | null;
  sslKeyPath: string | null;
}

/** A failure trying again cannot help: the saga undoes at once. */
export const permanent = (message: string) => Object.assign(new Error(message), { permanent: true });

/** Every name a site claims: its hostname and its secure hostname (when it has its own). */
export const namesOf = (site: Pick<SiteAddress, 'hostname' | 'secureHostname'>): string[] => [...new Set([site.hostname, ...(site.secureHostname ? [site.secureHostname] : [])])];

/**
 * The effects the site operations and the downgrade share, each
 * idempotent: the manifest's SQL templates of an event, the install's
 * config files rendered on every server, the vhosts waited for (present as
 * the catalog has them, or gone from a dispatcher), a site probed through
 * every dispatcher, certificate files removed, and DNS. Every one reads
 * the catalog as it is now.
 */
@Injectable()
export class SiteEffects {
  constructor(
    private readonly dataSource: DataSource,
    private readonly access: ServerAccess,
    private readonly builds: InstallBuildSteps,
    private readonly values: InstallValues,
    private readonly tenants: TenantDatabases,
    private readonly rebuilds: NginxRebuilds,
    private readonly probe: SiteProbe,
    private readonly dns: SiteDns,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
  ) {}

  /** The install as the build sees it, from the catalog now. */
  context(installId: number, jobId: number | null): Promise<BuildContext> {
    return this.builds.loadContext(installId, jobId);
  }

  /**
   * Runs the manifest's `event` templates in the tenant database, as the
   * install's own database user, each once per job (`tag`: recorded in
   * database_updates, so a rerun after a crash skips a template that
   * completed). Values: the install's, plus `site.*` (the site the event is
   * about) and, for a hostname change, `old.*` (what it was).
   */
  async runSqlTemplates(context: BuildContext, event: SqlEvent, site: SiteAddress, old: SiteAddress | null, tag: string, io: StepIO): Promise<void> {
    const { install, master, group, manifest, dbServer } = context;
    const files = templatesOf(manifest, event);
    if (!manifest.sql || files.length === 0) {
      io.log(`the manifest has no ${event} SQL template`);
      return;
    }
    const executor = this.access.executorFor(master);
    const checkout = checkoutOn(master, group, context.revision);
    const values = { ...(await this.values.values(context, master)), ...prefixed('site.', site), ...(old ? prefixed('old.', old) : {}) };
    const login = { user: install.dbUser, password: decryptSecret(this.config.secretsKey, install.dbPasswordEnc) };
    const updates = this.dataSource.getRepository(DatabaseUpdate);
    for (const file of files) {
      const record = `template:${file}#${tag}`.slice(0, 255);
      if (await updates.findOneBy({ installId: install.id, file: record })) {
        io.log(`${file} ran already (${tag})`);
        continue;
      }
      const source = (await executor.readFile(master, posix.join(checkout, file))).toString('utf8');
      const text = await renderTemplate(source, 'sql', values, file, { optionalPrefixes: OPTIONAL_PREFIXES });
      await this.tenants.runStatements(dbServer, install.dbName, login, file, splitSql(prepareSql(text, manifest.sql)), manifest.sql.session ?? {});
      await updates.save(updates.create({ installId: install.id, file: record, pluginId: null, checksum: sqlChecksum(text), appliedAt: new Date(), jobId: context.jobId }));
      io.log(`ran ${file} (${event}: ${site.hostname}${old ? `, was ${old.hostname}` : ''})`);
    }
  }

  /** The install's config files rendered again on every server of its home, with the sites `context` has. */
  async renderConfig(context: BuildContext, io: StepIO): Promise<void> {
    for (const server of [context.master, ...context.replicas].filter((s) => s.state !== 'down')) await this.builds.renderConfig(context, server, io);
  }

  /** Each dispatcher of the install serves its vhost as the catalog has it now (rebuilds asked for; waiting defers the job). */
  async awaitVhosts(context: BuildContext, io: StepIO): Promise<void> {
    await this.builds.webServer().execute(context, io);
  }

  /**
   * The install's vhost gone from the nginx each of `servers` runs (it no
   * longer serves the install: a downgrade's former replica). A rebuild is
   * asked for, then the live generation is looked at until it has no file
   * for the install.
   */
  async awaitVhostGone(install: Install, servers: readonly Server[], io: StepIO): Promise<void> {
    const up = servers.filter((s) => s.state !== 'down' && s.roles.includes('dispatcher'));
    const deadline = Date.now() + VHOST_WAIT_IN_RUN_MS;
    for (let round = 0; ; round++) {
      const waiting: Server[] = [];
      for (const server of up) {
        const row = await this.dataSource.getRepository(DispatcherConfig).findOneBy({ serverId: server.id });
        if (!row?.liveGeneration || (await new DispatcherFiles(this.access.executorFor(server), server).installFileIn(row.liveGeneration, install.fsName))) waiting.push(server);
      }
      if (waiting.length === 0) {
        if (up.length > 0) io.log(`vhost of ${install.fsName} gone from ${up.map((s) => s.hostname).join(', ')}`);
        return;
      }
      if (round === 0) for (const server of waiting) await this.rebuilds.request(server.id);
      if (Date.now() > deadline) throw new JobDeferredError(`waiting for the nginx rebuild of ${waiting.map((s) => s.hostname).join(', ')} to drop ${install.fsName}`, VHOST_RECHECK_MS);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** The site answers through every dispatcher serving it (each of its IPs there, its own Host), PHP answering 2xx/3xx. */
  async probeSite(installId: number, hostname: string, io: StepIO): Promise<void> {
    const targets = (await this.probe.targets(installId)).filter((t) => t.hostname === hostname);
    if (targets.length === 0) throw new Error(`no dispatcher that is up serves ${hostname} of install ${installId}: nothing to prove it answers`);
    const report = await this.probe.probe(targets, { boundMs: PROBE_BOUND_MS, signal: io.signal, log: io.log });
    for (const answer of report.answers) io.log(describeAnswer(answer));
    if (!report.ok) {
      const failing = report.answers.filter((a) => !a.ok);
      throw permanent(`${hostname} does not answer (${failing.length} of ${report.answers.length}, after ${report.rounds} rounds): ${failing.map(describeAnswer).join('; ')}`);
    }
  }

  /** Every site of the install answers through every dispatcher (the downgrade's proof). */
  async probeInstall(installId: number, io: StepIO): Promise<void> {
    const sites = await this.dataSource.getRepository(InstallSite).find({ where: { installId }, order: { id: 'ASC' } });
    for (const site of sites) await this.probeSite(installId, site.hostname, io);
  }

  /**
   * A site's certificate and key files removed from the servers (the seed
   * copies them to every server), unless another site of the install still
   * uses the same file. Only paths under a server's certificates root or
   * the install's home: the catalog never sends a removal elsewhere.
   */
  async removeCertificate(install: Install, servers: readonly Server[], paths: readonly (string | null)[], io: StepIO): Promise<void> {
    const wanted = paths.filter((p): p is string => typeof p === 'string' && p !== '');
    if (wanted.length === 0) return;
    const others = await this.dataSource.getRepository(InstallSite).find({ where: [{ installId: install.id, sslPemPath: In(wanted) }, { installId: install.id, sslKeyPath: In(wanted) }] });
    const shared = new Set(others.flatMap((s) => [s.sslPemPath, s.sslKeyPath]));
    for (const server of servers.filter((s) => s.state !== 'down')) {
      for (const path of wanted) {
        if (shared.has(path)) {
          io.log(`${path} is used by another site of the install: kept`);
          continue;
        }
        const inside = [server.certsRoot, homeOn(server, install)].some((root) => root && path.startsWith(`${root.replace(/\/+$/, '')}/`));
        if (!inside || path.split('/').includes('..')) {
          io.log(`${path} is neither under ${server.certsRoot} nor the home on ${server.hostname}: left as it is`);
          continue;
        }
        const executor = this.access.executorFor(server);
        if (!(await executor.exists(server, path))) continue;
        await executor.remove(server, path);
        io.log(`removed ${path} on ${server.hostname}`);
      }
    }
  }

  /** DNS: every managed zone serves the install's names at the IPs the catalog has now (logged into the step). */
  async publish(installId: number, io: StepIO): Promise<DnsChange[]> {
    const changes = await this.dns.publish(installId, dnsLog(io));
    logUnmanaged(changes, io);
    return changes;
  }

  async unpublish(names: readonly string[], io: StepIO): Promise<DnsChange[]> {
    if (names.length === 0) return [];
    const changes = await this.dns.unpublish(names, dnsLog(io));
    logUnmanaged(changes, io);
    return changes;
  }
}

/** A site's template values under a prefix (`site.hostname`, `old.url`...). */
function prefixed(prefix: string, site: SiteAddress): Record<string, string> {
  const values = siteValues(site as InstallSite);
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [`${prefix}${k}`, v]));
}

function dnsLog(io: StepIO): DnsLog {
  return { log: (line) => io.log(`dns: ${line}`) };
}

function logUnmanaged(changes: readonly DnsChange[], io: StepIO): void {
  for (const c of changes.filter((c) => !c.managed)) {
    io.log(`dns: ${c.name} is not in a zone we manage: the customer sets ${c.after.length ? c.after.map((r) => `${r.type} ${r.content}`).join(', ') : 'no record (remove theirs)'}`);
  }
}
