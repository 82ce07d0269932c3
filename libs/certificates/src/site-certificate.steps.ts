import { Inject, Injectable } from '@nestjs/common';
import { DataSource, In, type EntityManager } from 'typeorm';
import { Install, InstallSite, Job, type CertSource, Server } from '@app/catalog';
import { registerSecrets } from '@app/common';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { ServerAccess } from '@app/hosts';
import { decryptSecret, InstallConfigJob } from '@app/installs';
import { JobDeferredError } from '@app/queue';
import type { StepIO } from '@app/saga';
import { NginxRebuilds, nginxResourceKey } from '@app/webserver';
import { certDirOn, isOurs, pairFilesOn, rootOwner } from './cert-files.js';
import { describeServed, ServedCertificateProbe } from './served-certificate.probe.js';

/** A site's certificate fields as the catalog has them (what a failure puts back). */
export interface SiteCertState {
  pem: string | null;
  key: string | null;
  notAfter: string | null;
  source: CertSource | null;
  sha256: string | null;
  acmeRenew: boolean;
  acmeNextAttemptAt: string | null;
  acmeFailures?: number;
  acmeLastError?: string | null;
}

export interface SiteCertificatePayload {
  installId: number;
  siteId: number;
  source: CertSource;
  /** The chain, leaf first (public). */
  chainPem: string;
  /** The key, encrypted with the secrets key: a job's payload is readable through the jobs API. */
  keyEnc: string;
  sha256: string;
  notAfter: string;
  /** The site's certificate when the change was asked for (no other certificate change runs meanwhile). */
  previous: SiteCertState;
  /** Next renewal attempt for an ACME certificate (computed at issuance, jitter included). */
  acmeNextAttemptAt?: string | null;
}

export interface SiteCertificateContext {
  payload: SiteCertificatePayload;
  install: Install;
  site: InstallSite;
  /** The dispatchers serving the install that are up. */
  dispatchers: Server[];
  /** The new pair's paths (one layout: the same on every dispatcher). */
  files: { pem: string; key: string };
}

/** How long the served certificate is asked for (with backoff) before the change gives up. */
const SERVED_BOUND_MS = 20_000;
/** How long a step waits for nginx within one run before it defers its job; when it looks again. */
const VHOST_WAIT_IN_RUN_MS = 5_000;
const VHOST_RECHECK_MS = 1_000;
const permanent = (message: string) => Object.assign(new Error(message), { permanent: true });

export const certStateOf = (site: InstallSite): SiteCertState => ({
  pem: site.sslPemPath,
  key: site.sslKeyPath,
  notAfter: site.certNotAfter?.toISOString() ?? null,
  source: site.certSource,
  sha256: site.certSha256,
  acmeRenew: site.acmeRenew,
  acmeNextAttemptAt: site.acmeNextAttemptAt?.toISOString() ?? null,
  acmeFailures: site.acmeFailures,
  acmeLastError: site.acmeLastError,
});

/**
 * The effects of installing a site's certificate (upload or ACME), shared
 * by the saga's steps and their compensations; each idempotent, each
 * compensation tolerating "never ran". The key is decrypted only here and
 * registered as a secret: no output, journal or error shows it.
 */
@Injectable()
export class SiteCertificateSteps {
  constructor(
    private readonly dataSource: DataSource,
    private readonly access: ServerAccess,
    private readonly rebuilds: NginxRebuilds,
    private readonly served: ServedCertificateProbe,
    private readonly configs: InstallConfigJob,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
  ) {}

  async loadContext(payload: SiteCertificatePayload): Promise<SiteCertificateContext> {
    const m = this.dataSource.manager;
    const install = await m.findOneByOrFail(Install, { id: payload.installId });
    const site = await m.findOneByOrFail(InstallSite, { id: payload.siteId, installId: payload.installId });
    const dispatchers = (await this.rebuilds.dispatchersOf(install.id)).filter((s) => s.state !== 'down');
    if (dispatchers.length === 0) throw permanent(`no dispatcher that is up serves install ${install.id}`);
    return { payload, install, site, dispatchers, files: pairFilesOn(dispatchers[0]!, install, payload.sha256) };
  }

  private key(payload: SiteCertificatePayload): string {
    const key = decryptSecret(this.config.secretsKey, payload.keyEnc);
    registerSecrets(key);
    return key;
  }

  /** Step `files`: the pair on every dispatcher, in the install's own directory (0700), each file 0600, root's. */
  async writeFiles({ payload, install, dispatchers, files }: SiteCertificateContext, io: StepIO): Promise<void> {
    const key = this.key(payload);
    // The dispatchers at once, and on each the two files at once (the change's critical path: nothing serves it before the rebuild after this).
    // Every write ends before the step does, failed or not: a compensation must not race a write still under way.
    const settled = await Promise.allSettled(
      dispatchers.map(async (server) => {
        const executor = this.access.executorFor(server);
        const owner = rootOwner(server);
        await executor.mkdir(server, certDirOn(server, install), { mode: 0o700, ...(owner ? { owner } : {}) });
        const writes = await Promise.allSettled([
          executor.writeFile(server, files.pem, payload.chainPem, { mode: 0o600, ...(owner ? { owner } : {}) }),
          executor.writeFile(server, files.key, key, { mode: 0o600, ...(owner ? { owner } : {}) }),
        ]);
        for (const w of writes) if (w.status === 'rejected') throw w.reason;
        io.log(`certificate ${payload.sha256.slice(0, 16)} written on ${server.hostname}: ${files.pem}, ${files.key}`);
      }),
    );
    for (const s of settled) if (s.status === 'rejected') throw s.reason;
  }

  /** Compensation of `files`: the new pair removed where the catalog no longer names it (never the pair that was serving before). */
  async removeNewFiles({ payload, install, dispatchers, files }: SiteCertificateContext, io: StepIO): Promise<void> {
    const site = await this.dataSource.getRepository(InstallSite).findOneByOrFail({ id: payload.siteId });
    if (site.sslPemPath === files.pem || payload.previous.pem === files.pem) {
      io.log(`the pair ${payload.sha256.slice(0, 16)} is the site's certificate: kept`);
      return;
    }
    for (const server of dispatchers) {
      const executor = this.access.executorFor(server);
      for (const path of [files.pem, files.key]) if (isOurs(path, server, install)) await executor.remove(server, path);
      io.log(`new pair removed from ${server.hostname}`);
    }
  }

  /** Step `record`: the site names the new pair (and its expiry, source, fingerprint, ACME state); every dispatcher's nginx rebuild asked in the same transaction. */
  async record({ payload, site, files }: SiteCertificateContext, io: StepIO): Promise<void> {
    const changed = await this.dataSource.transaction(async (m) => {
      const now = await this.lockSite(m, site.id);
      if (now.certSha256 === payload.sha256 && now.sslPemPath === files.pem) return false;
      const acme = payload.source === 'acme';
      await m.update(InstallSite, { id: site.id }, {
        sslPemPath: files.pem,
        sslKeyPath: files.key,
        certNotAfter: new Date(payload.notAfter),
        certSource: payload.source,
        certSha256: payload.sha256,
        acmeRenew: acme,
        acmeNextAttemptAt: acme && payload.acmeNextAttemptAt ? new Date(payload.acmeNextAttemptAt) : null,
        ...(acme ? { acmeFailures: 0, acmeLastError: null } : {}),
      });
      await this.rebuilds.requestForInstall(payload.installId, m);
      return true;
    });
    io.log(changed ? `site ${site.hostname} now names certificate ${payload.sha256.slice(0, 16)}; nginx rebuilds asked` : `site ${site.hostname} names certificate ${payload.sha256.slice(0, 16)} already`);
  }

  /**
   * Compensation of `record` (and of the steps after it): the previous pair
   * back in the catalog, nginx rebuilt, and waited for, so the new files
   * are unreferenced before `files` removes them.
   */
  async restore(context: SiteCertificateContext, io: StepIO): Promise<void> {
    const { payload, site, files } = context;
    const p = payload.previous;
    const restored = await this.dataSource.transaction(async (m) => {
      const now = await this.lockSite(m, site.id);
      // Changed by someone else meanwhile (or never by us): theirs to keep.
      if (now.sslPemPath !== files.pem || now.certSha256 !== payload.sha256 || p.pem === files.pem) return false;
      await m.update(InstallSite, { id: site.id }, {
        sslPemPath: p.pem,
        sslKeyPath: p.key,
        certNotAfter: p.notAfter ? new Date(p.notAfter) : null,
        certSource: p.source,
        certSha256: p.sha256,
        acmeRenew: p.acmeRenew,
        acmeNextAttemptAt: p.acmeNextAttemptAt ? new Date(p.acmeNextAttemptAt) : null,
        // The failure streak as it was (an issued pair that could not be installed counts on it, see the job's onCompensated).
        ...(p.acmeFailures === undefined ? {} : { acmeFailures: p.acmeFailures, acmeLastError: p.acmeLastError ?? null }),
      });
      await this.rebuilds.requestForInstall(payload.installId, m);
      return true;
    });
    const now = await this.dataSource.getRepository(InstallSite).findOneByOrFail({ id: site.id });
    if (!restored && now.sslPemPath !== p.pem) {
      io.log(`site ${site.hostname} names neither certificate ${payload.sha256.slice(0, 16)} nor the previous one: changed by someone else, left as it is`);
      return;
    }
    io.log(`site ${site.hostname} ${restored ? 'back' : 'is'} on ${p.sha256 ? `certificate ${p.sha256.slice(0, 16)}` : 'no certificate'}; waiting for nginx`);
    // Waited for even when put back by an earlier run: the new files go only once no nginx config names them.
    await this.awaitVhosts(context, io, { restoring: true });
  }

  /** Step `webserver`: each dispatcher's nginx loaded the install's vhost as the catalog has it (a refusal fails the change). */
  async webServer(context: SiteCertificateContext, io: StepIO): Promise<void> {
    await this.awaitVhosts(context, io, { restoring: false });
  }

  /**
   * Waits until each dispatcher's nginx loaded the install's vhost as the
   * catalog has it now; waiting long defers the job (the worker slot is
   * freed). A quarantine is an answer only once the rebuilds asked for have
   * run (before, it is an earlier apply's: the one this change undoes).
   * `restoring`: a vhost nginx refuses even now is said, not thrown:
   * there is nothing older to put back.
   */
  private async awaitVhosts({ install, dispatchers }: SiteCertificateContext, io: StepIO, options: { restoring: boolean }): Promise<void> {
    const deadline = Date.now() + VHOST_WAIT_IN_RUN_MS;
    const live = new Set<number>();
    for (let round = 0; ; round++) {
      const waiting: Server[] = [];
      for (const server of dispatchers.filter((s) => !live.has(s.id))) {
        const row = await this.rebuilds.configRow(server.id);
        // A rebuild asked for has not been applied yet: whatever the live config says, it is not the catalog's answer (a rebuild started before this change may still load the pair it undoes).
        if (row.wantedGeneration > row.appliedGeneration) {
          waiting.push(server);
          const open = await this.dataSource.getRepository(Job).count({ where: { resourceKey: nginxResourceKey(server.id), state: In(['ready', 'blocked', 'running']) } });
          if (open === 0 && round === 0) await this.rebuilds.request(server.id);
          continue;
        }
        const vhost = await this.rebuilds.vhostState(server, install.id);
        if (vhost.state === 'live') live.add(server.id);
        else if (vhost.state === 'quarantined') {
          if (!options.restoring) throw permanent(vhost.reason);
          io.log(`nginx on ${server.hostname} still refuses the vhost of ${install.fsName}: ${vhost.reason}`);
          live.add(server.id);
        } else if (vhost.state === 'failed') throw new Error(vhost.reason);
        else if (vhost.state === 'not-served') throw new Error(`${server.hostname} does not serve install ${install.id} (${install.status})`);
        else {
          waiting.push(server);
          if (round === 0) await this.rebuilds.request(server.id);
        }
      }
      if (waiting.length === 0) {
        io.log(`vhost of ${install.fsName} loaded on ${dispatchers.map((s) => s.hostname).join(', ')}`);
        return;
      }
      if (Date.now() > deadline) throw new JobDeferredError(`waiting for the nginx rebuild of ${waiting.map((s) => s.hostname).join(', ')}`, VHOST_RECHECK_MS);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Step `probe`: every dispatcher serves the new leaf for every name of the site. */
  async probeServed({ payload, site, dispatchers }: SiteCertificateContext, io: StepIO): Promise<void> {
    const targets = await this.served.targets(site, dispatchers);
    if (targets.length === 0) throw permanent(`site ${site.hostname} has no IP on a dispatcher that is up: nothing to prove its certificate is served`);
    const report = await this.served.expect(targets, payload.sha256, { boundMs: SERVED_BOUND_MS, signal: io.signal, log: io.log });
    for (const answer of report.answers) io.log(describeServed(answer));
    if (!report.ok) {
      const wrong = report.answers.filter((a) => a.sha256 !== payload.sha256);
      throw permanent(`certificate ${payload.sha256.slice(0, 16)} is not served (${wrong.length} of ${report.answers.length}): ${wrong.map(describeServed).join('; ')}`);
    }
  }

  /** Step `config`: the install's config files rendered again (a site's scheme follows its certificate); its own job, after this one (same resource key). */
  async requestConfig({ install }: SiteCertificateContext, io: StepIO): Promise<void> {
    const jobId = await this.configs.request(install.id);
    io.log(`config re-render of install ${install.id} queued (job ${jobId})`);
  }

  /** Step `cleanup`: the previous pair deleted on every dispatcher, once the new one serves; only files the engine wrote for this install, and none another site still names. */
  async removePrevious({ payload, install, dispatchers, files }: SiteCertificateContext, io: StepIO): Promise<void> {
    const p = payload.previous;
    if (!p.pem || p.pem === files.pem) return;
    const others = await this.dataSource.getRepository(InstallSite).find({ where: { installId: install.id } });
    const named = new Set(others.flatMap((s) => [s.sslPemPath, s.sslKeyPath]));
    for (const server of dispatchers) {
      const executor = this.access.executorFor(server);
      const gone = [p.pem, p.key].filter((path): path is string => isOurs(path, server, install) && !named.has(path));
      for (const path of gone) await executor.remove(server, path);
      if (gone.length > 0) io.log(`previous pair ${p.sha256?.slice(0, 16) ?? ''} removed from ${server.hostname}`);
    }
  }

  private async lockSite(m: EntityManager, siteId: number): Promise<InstallSite> {
    const sqlite = this.dataSource.options.type === 'better-sqlite3';
    return m.findOneOrFail(InstallSite, { where: { id: siteId }, ...(sqlite ? {} : { lock: { mode: 'pessimistic_write' as const } }) });
  }
}

