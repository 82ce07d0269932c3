import { Injectable } from '@nestjs/common';
import { DataSource, In, Like } from 'typeorm';
import { AuditEventRepository, DatabaseUpdate, InstallSite, InstallSiteIp, Server, SiteName } from '@app/catalog';
import { JobHandler, type JobContext } from '@app/queue';
import { SagaRunner, type SagaDefinition, type StepIO } from '@app/saga';
import { SiteCatalog } from './site-catalog.js';
import { namesOf, permanent, SiteEffects, type SiteAddress } from './site-effects.js';
import { SITE_HOSTNAME } from './site-job-kinds.js';
import type { ChangeHostnamePayload } from './site-payloads.js';
import { operationContext, sagaStep, type OperationContext } from './site-saga.js';

export const SITE_HOSTNAME_SAGA = 'site-hostname';

type Context = OperationContext<ChangeHostnamePayload>;

/**
 * The seed's "Change install hostname" as a saga. The request claimed the
 * new names; then:
 * 1. `reserve`: they are still the site's (undone: given up).
 * 2. `switch`: the site's row takes the new names (and IPs; the
 *    certificate columns cleared when it does not cover them). Undone: the
 *    row as it was, the config files, vhosts and DNS following it: back to
 *    the old name everywhere.
 * 3. `sql`: the manifest's `hostname_change` templates (`site.*` new,
 *    `old.*` old). Undone by running them the other way round.
 * 4. `config`: every config file rendered again (every value derived from
 *    the hostname).
 * 5. `dns`: the install's names published (undone: the new names removed).
 * 6. `webserver`: every dispatcher serves the new names, not the old.
 * 7. `probe`: the new hostname answers through every dispatcher.
 * 8. `release` (the pivot: retried forward, never undone): the old names'
 *    records removed, the dropped certificate's files removed, the old
 *    names given up.
 */
@Injectable()
export class HostnameChangeJob {
  constructor(
    private readonly dataSource: DataSource,
    private readonly catalog: SiteCatalog,
    private readonly effects: SiteEffects,
    private readonly sagas: SagaRunner,
    private readonly audit: AuditEventRepository,
  ) {}

  @JobHandler(SITE_HOSTNAME)
  async run(payload: ChangeHostnamePayload, job: JobContext): Promise<void> {
    await this.sagas.run(this.definition(job.jobId), payload, job);
  }

  definition(jobId: number): SagaDefinition<Context, ChangeHostnamePayload> {
    const e = this.effects;
    const none = async () => undefined;
    const details = (p: ChangeHostnamePayload) => ({
      requestedBy: p.requestedBy,
      jobId,
      siteId: p.siteId,
      before: { hostname: p.from.hostname, secureHostname: p.from.secureHostname, ips: p.from.ips.map((i) => i.serverIpId), certificate: p.from.sslPemPath },
      after: { hostname: p.to.hostname, secureHostname: p.to.secureHostname, ips: (p.to.ips ?? p.from.ips).map((i) => i.serverIpId), certificate: p.dropCertificate ? null : p.from.sslPemPath },
    });
    return {
      name: SITE_HOSTNAME_SAGA,
      pivot: 'release',
      steps: [
        sagaStep('reserve', (c, io) => this.reserve(c.payload, io), (c, io) => this.unreserve(c.payload, io)),
        sagaStep('switch', (c, io) => this.switch(c.payload, io), (c, io) => this.switchBack(c, io)),
        sagaStep('sql', (c, io) => this.sql(c, io, 'forward'), (c, io) => this.sql(c, io, 'back')),
        sagaStep('config', async ({ payload: p }, io) => e.renderConfig(await e.context(p.installId, jobId), io), none),
        sagaStep('dns', async ({ payload: p }, io) => void (await e.publish(p.installId, io)), async ({ payload: p }, io) => void (await e.unpublish(added(p), io))),
        sagaStep('webserver', async ({ payload: p }, io) => e.awaitVhosts(await e.context(p.installId, jobId), io), none),
        sagaStep('probe', async ({ payload: p }, io) => e.probeSite(p.installId, p.to.hostname, io), none),
        sagaStep('release', (c, io) => this.release(c, io), none),
      ],
      loadContext: async (payload) => operationContext(payload, jobId),
      onCompleted: async ({ payload: p }) => {
        await this.audit.record({ actor: `job:${jobId}`, via: 'worker', action: 'site.hostname.changed', targetType: 'install', targetId: p.installId, details: details(p) });
      },
      onCompensated: async ({ payload: p }, failure) => {
        const d = details(p);
        await this.audit.record({ actor: `job:${jobId}`, via: 'worker', action: 'site.hostname.change-failed', targetType: 'install', targetId: p.installId, details: { ...d, after: d.before, failure: failure.slice(0, 500) } });
      },
    };
  }

  private async reserve(p: ChangeHostnamePayload, io: StepIO): Promise<void> {
    const names = added(p);
    const rows = names.length ? await this.dataSource.getRepository(SiteName).find({ where: { name: In(names) } }) : [];
    const foreign = rows.filter((r) => r.installSiteId !== p.siteId);
    if (foreign.length > 0) throw permanent(`${foreign.map((r) => r.name).join(', ')} claimed by install ${foreign[0]!.installId}`);
    if (!(await this.dataSource.getRepository(InstallSite).findOneBy({ id: p.siteId, installId: p.installId }))) throw permanent(`site ${p.siteId} of install ${p.installId} is gone`);
    await this.dataSource.transaction((m) => this.catalog.claim(m, p.installId, p.siteId, names));
    io.log(names.length ? `${names.join(', ')} claimed for site ${p.siteId}` : 'no new name to claim');
  }

  private async unreserve(p: ChangeHostnamePayload, io: StepIO): Promise<void> {
    const names = added(p);
    if (names.length === 0) return;
    await this.dataSource.getRepository(SiteName).delete({ installSiteId: p.siteId, name: In(names) });
    io.log(`${names.join(', ')} given up`);
  }

  /** The site's row with the new names (and IPs); its certificate columns cleared when the certificate does not cover them. */
  private async switch(p: ChangeHostnamePayload, io: StepIO): Promise<void> {
    await this.dataSource.transaction(async (m) => {
      await m.update(InstallSite, { id: p.siteId }, {
        hostname: p.to.hostname,
        secureHostname: p.to.secureHostname,
        ...(p.dropCertificate ? { sslPemPath: null, sslKeyPath: null, certNotAfter: null, certSource: null, certSha256: null, acmeRenew: false, acmeNextAttemptAt: null } : {}),
      });
      if (p.to.ips) {
        const held = await m.find(InstallSiteIp, { where: { installSiteId: p.siteId } });
        const wanted = new Set(p.to.ips.map((r) => r.serverIpId));
        const drop = held.filter((h) => !wanted.has(h.serverIpId));
        if (drop.length > 0) await m.delete(InstallSiteIp, { id: In(drop.map((h) => h.id)) });
        await this.catalog.attachIps(m, p.siteId, p.to.ips.filter((r) => !held.some((h) => h.serverIpId === r.serverIpId)));
      }
    });
    io.log(`site ${p.siteId}: ${p.from.hostname} -> ${p.to.hostname}${p.to.secureHostname ? ` (secure ${p.to.secureHostname})` : ''}${p.to.ips ? `, IPs ${p.to.ips.map((i) => i.serverIpId).join(', ')}` : ''}${p.dropCertificate ? '; certificate dropped (it does not cover the new names)' : ''}`);
  }

  /** Back to the old name everywhere: the row as it was (an exclusive IP taken meanwhile: another free one), then config files, vhosts and DNS. */
  private async switchBack({ payload: p, jobId }: Context, io: StepIO): Promise<void> {
    const f = p.from;
    await this.dataSource.transaction(async (m) => {
      await m.update(InstallSite, { id: p.siteId }, {
        hostname: f.hostname, secureHostname: f.secureHostname, sslPemPath: f.sslPemPath, sslKeyPath: f.sslKeyPath,
        certNotAfter: f.certNotAfter ? new Date(f.certNotAfter) : null, certSource: f.certSource, certSha256: f.certSha256, acmeRenew: f.acmeRenew,
      });
      if (p.to.ips) {
        const held = await m.find(InstallSiteIp, { where: { installSiteId: p.siteId } });
        const wanted = new Set(f.ips.map((r) => r.serverIpId));
        const drop = held.filter((h) => !wanted.has(h.serverIpId));
        if (drop.length > 0) await m.delete(InstallSiteIp, { id: In(drop.map((h) => h.id)) });
        for (const row of f.ips.filter((r) => !held.some((h) => h.serverIpId === r.serverIpId))) {
          let ipId = row.serverIpId;
          if (row.exclusive && (await this.catalog.heldElsewhere(m, ipId, p.siteId))) {
            ipId = (await this.catalog.freeDedicatedIp(m, await m.findOneByOrFail(Server, { id: row.serverId }), f.hostname)).id;
            io.log(`IP ${row.serverIpId} was taken meanwhile: ${ipId} instead`);
          }
          await this.catalog.attachIps(m, p.siteId, [{ ...row, serverIpId: ipId }]);
        }
      }
    });
    io.log(`site ${p.siteId} back to ${f.hostname}`);
    const context = await this.effects.context(p.installId, jobId);
    await this.effects.renderConfig(context, io);
    await this.effects.awaitVhosts(context, io);
    await this.effects.publish(p.installId, io);
  }

  /** The `hostname_change` templates; undone by running them from the new name back to the old one. */
  private async sql({ payload: p, jobId }: Context, io: StepIO, way: 'forward' | 'back'): Promise<void> {
    if (added(p).length === 0 && released(p).length === 0) {
      io.log('the names stay: no hostname_change template to run');
      return;
    }
    const site = await this.dataSource.getRepository(InstallSite).findOneByOrFail({ id: p.siteId });
    const before: SiteAddress = { ...p.from };
    const after: SiteAddress = { hostname: p.to.hostname, secureHostname: p.to.secureHostname, relUrl: site.relUrl, secureRelUrl: site.secureRelUrl, sslPemPath: p.dropCertificate ? null : p.from.sslPemPath, sslKeyPath: p.dropCertificate ? null : p.from.sslKeyPath };
    const context = await this.effects.context(p.installId, jobId);
    if (way === 'forward') await this.effects.runSqlTemplates(context, 'hostname_change', after, before, `site.hostname:${p.siteId}:job${jobId}`, io);
    else {
      // Only what ran is run back.
      const ran = await this.dataSource.getRepository(DatabaseUpdate).countBy({ installId: p.installId, file: Like(`%#site.hostname:${p.siteId}:job${jobId}`) });
      if (ran === 0) return;
      await this.effects.runSqlTemplates(context, 'hostname_change', before, after, `site.hostname:${p.siteId}:job${jobId}:undo`, io);
    }
  }

  /** Past the pivot: the old names' records gone, the dropped certificate's files removed, the old names given up. */
  private async release({ payload: p, jobId }: Context, io: StepIO): Promise<void> {
    const names = released(p);
    await this.effects.unpublish(names, io);
    if (p.dropCertificate) {
      const context = await this.effects.context(p.installId, jobId);
      await this.effects.removeCertificate(context.install, [context.master, ...context.replicas], [p.from.sslPemPath, p.from.sslKeyPath], io);
    }
    if (names.length > 0) {
      await this.dataSource.getRepository(SiteName).delete({ installSiteId: p.siteId, name: In(names) });
      io.log(`${names.join(', ')} released`);
    }
  }
}

/** The names the site claims after the change and not before. */
function added(p: ChangeHostnamePayload): string[] {
  return namesOf(p.to).filter((n) => !p.from.names.includes(n));
}

/** The names the site gives up. */
function released(p: ChangeHostnamePayload): string[] {
  const now = namesOf(p.to);
  return p.from.names.filter((n) => !now.includes(n));
}
