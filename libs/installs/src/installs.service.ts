import { Injectable, Logger } from '@nestjs/common';
import { DataSource, In, IsNull, LessThan, type FindOptionsWhere } from 'typeorm';
import { Install, InstallServer, InstallSite, InstallSiteIp, Job, SagaStep, Server, ServerIp, SharedCodeGroup, WebQuarantine } from '@app/catalog';
import { NotFoundError } from '@app/common';
import { QueueService } from '@app/queue';
import { NginxRebuilds } from '@app/webserver';
import { INSTALL_BUILD } from './build-saga/install-build.job.js';
import type { CreateInstallDto } from './dto/create-install.dto.js';
import type { InstallAcceptedView, InstallSummaryView, InstallView, ListInstallsQuery } from './dto/install.view.js';
import { PrepareService } from './prepare.service.js';

const buildKey = (installId: number) => `install.build:${installId}`;

/** The order hook and the installs' status, over prepare and the build job. */
@Injectable()
export class InstallsService {
  private readonly logger = new Logger('Installs');

  constructor(
    private readonly dataSource: DataSource,
    private readonly prepare: PrepareService,
    private readonly queue: QueueService,
    private readonly rebuilds: NginxRebuilds,
  ) {}

  /**
   * Records the order (prepare) and queues its build in the same
   * transaction; a repeated order reference returns the same answer.
   */
  async order(dto: CreateInstallDto): Promise<{ view: InstallAcceptedView; created: boolean }> {
    const { install, created } = await this.prepare.prepare(dto, async (m, fresh) => {
      if (fresh.sharedCodeGroupId === null) return;
      await this.queue.enqueue(INSTALL_BUILD, { installId: fresh.id }, { manager: m, resourceKey: `install:${fresh.id}`, idempotencyKey: buildKey(fresh.id) });
      fresh.status = 'building';
      await m.update(Install, { id: fresh.id }, { status: 'building' });
    });
    // Its dispatchers' nginx is rebuilt while the build runs, so by its webserver step the vhost is usually live.
    // After the commit (no lock on the dispatchers' rows inside the order); the step asks again if this is lost.
    if (created && install.status === 'building') await this.rebuildEarly(install.id);
    const job = await this.dataSource.getRepository(Job).findOne({ where: { idempotencyKey: buildKey(install.id) } });
    const current = created ? install : await this.dataSource.getRepository(Install).findOneByOrFail({ id: install.id });
    return {
      created,
      view: { installId: current.id, jobId: job?.id ?? null, status: current.status, statusReason: current.statusReason, statusUrl: `/v1/installs/${current.id}` },
    };
  }

  /** An optimization only (the webserver step asks for what it needs): a failure here never fails the order. */
  private async rebuildEarly(installId: number): Promise<void> {
    try {
      await this.rebuilds.requestForInstall(installId);
    } catch (error) {
      this.logger.warn({ err: error, installId }, 'requesting the nginx rebuild of a new install failed; its build will ask again');
    }
  }

  /** Installs accepted while no code group had room, oldest first. */
  waiting(): Promise<Install[]> {
    return this.dataSource.getRepository(Install).find({ where: { status: 'preparing', sharedCodeGroupId: IsNull() }, order: { id: 'ASC' } });
  }

  /**
   * Gives waiting installs a code group slot where one has opened (a new
   * group, a failed install's slot) and queues their builds, oldest first.
   * Each in its own transaction with the same conditional update as
   * prepare, so engines doing this at once never overfill a group.
   */
  async queueWaiting(): Promise<number> {
    let queued = 0;
    for (const waiting of await this.waiting()) {
      const started = await this.dataSource.transaction(async (m) => {
        const install = await m.findOne(Install, { where: { id: waiting.id, status: 'preparing', sharedCodeGroupId: IsNull() } });
        if (!install) return false;
        const group = await this.prepare.slotFor(m, install);
        if (!group) return false;
        await m.update(Install, { id: install.id }, { sharedCodeGroupId: group.id, status: 'building', statusReason: null });
        await this.queue.enqueue(INSTALL_BUILD, { installId: install.id }, { manager: m, resourceKey: `install:${install.id}`, idempotencyKey: buildKey(install.id) });
        return true;
      });
      if (started) {
        queued++;
        await this.rebuildEarly(waiting.id);
      }
    }
    return queued;
  }

  async get(id: number): Promise<InstallView> {
    const m = this.dataSource.manager;
    const install = await m.findOne(Install, { where: { id } });
    if (!install) throw new NotFoundError('Install', id);
    const sites = await m.find(InstallSite, { where: { installId: id }, order: { id: 'ASC' } });
    const held = sites.length ? await m.find(InstallSiteIp, { where: { installSiteId: In(sites.map((s) => s.id)) }, order: { id: 'ASC' } }) : [];
    const ips = held.length ? await m.find(ServerIp, { where: { id: In(held.map((h) => h.serverIpId)) } }) : [];
    const hosting = await m.find(InstallServer, { where: { installId: id }, order: { id: 'ASC' } });
    const serverIds = [...new Set([...hosting.map((h) => h.serverId), ...held.map((h) => h.serverId), install.dbServerId, install.masterServerId].filter((x): x is number => x !== null))];
    const servers = new Map((serverIds.length ? await m.find(Server, { where: { id: In(serverIds) } }) : []).map((s) => [s.id, s.hostname]));
    const group = install.sharedCodeGroupId ? await m.findOne(SharedCodeGroup, { where: { id: install.sharedCodeGroupId } }) : null;
    const job = await m.findOne(Job, { where: { idempotencyKey: buildKey(id) } });
    const steps = job ? await m.find(SagaStep, { where: { jobId: job.id }, order: { stepIndex: 'ASC' } }) : [];
    const quarantines = await m.find(WebQuarantine, { where: { installId: id }, order: { id: 'ASC' } });
    const quarantineServers = new Map((quarantines.length ? await m.find(Server, { where: { id: In(quarantines.map((q) => q.serverId)) } }) : []).map((s) => [s.id, s.hostname]));
    return {
      id: install.id,
      orderRef: install.orderRef,
      customerEmail: install.customerEmail,
      shop: { storeName: install.storeName, adminEmail: install.adminEmail, locale: install.locale },
      license: install.license,
      status: install.status,
      statusReason: install.statusReason,
      fsName: install.fsName,
      dbName: install.dbName,
      dbUser: install.dbUser,
      dbServer: install.dbServerId ? (servers.get(install.dbServerId) ?? null) : null,
      codeGroup: group?.name ?? null,
      master: install.masterServerId ? (servers.get(install.masterServerId) ?? null) : null,
      sites: sites.map((s) => ({
        hostname: s.hostname,
        secureHostname: s.secureHostname,
        relUrl: s.relUrl,
        secureRelUrl: s.secureRelUrl,
        ips: held.filter((h) => h.installSiteId === s.id).map((h) => ({ server: servers.get(h.serverId) ?? String(h.serverId), ip: ips.find((i) => i.id === h.serverIpId)?.ip ?? '?' })),
      })),
      servers: hosting.map((h) => ({ hostname: servers.get(h.serverId) ?? String(h.serverId), role: h.role, weight: h.weight })),
      jobId: job?.id ?? null,
      steps: steps.map((s) => ({
        name: s.stepName,
        state: s.state,
        attempt: s.attempt,
        durationMs: s.durationMs,
        error: s.error,
        startedAt: s.startedAt?.toISOString() ?? null,
        finishedAt: s.finishedAt?.toISOString() ?? null,
      })),
      webQuarantines: quarantines.map((q) => ({ server: quarantineServers.get(q.serverId) ?? String(q.serverId), reason: q.reason, since: q.createdAt.toISOString() })),
      createdAt: install.createdAt.toISOString(),
    };
  }

  async list(query: ListInstallsQuery): Promise<InstallSummaryView[]> {
    const where: FindOptionsWhere<Install> = {};
    if (query.status) where.status = query.status;
    if (query.email) where.customerEmail = query.email.toLowerCase();
    if (query.beforeId) where.id = LessThan(query.beforeId);
    const rows = await this.dataSource.getRepository(Install).find({ where, order: { id: 'DESC' }, take: query.limit ?? 50 });
    return rows.map((i) => ({ id: i.id, orderRef: i.orderRef, customerEmail: i.customerEmail, license: i.license, status: i.status, statusReason: i.statusReason, fsName: i.fsName, createdAt: i.createdAt.toISOString() }));
  }
}
