import { posix } from 'node:path';
import { Inject, Injectable, Optional } from '@nestjs/common';
import { DataSource, In } from 'typeorm';
import { DispatcherConfig, FtpAccount, HandlerConfig, InstallSite, InstallSiteIp, SiteName, StartupMount, type Install, type Server } from '@app/catalog';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { SiteDns } from '@app/dns';
import { ServerAccess } from '@app/hosts';
import { DispatcherFiles, installFile, installUserComment, managesPhp, phpUserOf, poolFileOf, POOL_GENERATIONS_DIR } from '@app/webserver';
import { cronFileOn, homeOn } from '../build-saga/build-context.js';
import { HOME_MARKER, homeMarker } from '../build-saga/build-steps.js';
import { decryptSecret } from '../secrets-cipher.js';
import type { BackupCertificate } from './install-backups.service.js';
import { TenantDumps } from './tenant-dumps.js';

/**
 * One thing the sweep looked at: `absent` (nothing there), `leftover`
 * (something this install made is still there), `foreign` (something of
 * that name that this install did not make: not a leftover, left alone),
 * `unchecked` (a server that is down, a zone we do not manage).
 */
export interface SweepItem {
  where: string;
  what: 'home' | 'cron' | 'vhost' | 'pool' | 'system-user' | 'database' | 'database-user' | 'dns' | 'certificate' | 'catalog';
  name: string;
  state: 'absent' | 'leftover' | 'foreign' | 'unchecked';
  detail?: string;
}

export interface SweepResult {
  at: string;
  checked: number;
  leftovers: SweepItem[];
  items: SweepItem[];
}

/**
 * The removal's verification sweep: on every server the install was on,
 * whether anything it made is still there (home with its links, cron file,
 * the vhost nginx loaded, the pool php-fpm runs, its system user), on its
 * database server its database and accounts, in DNS its names' records,
 * its certificates, and in the catalog its claims. Read-only.
 */
@Injectable()
export class RemovalSweep {
  constructor(
    private readonly dataSource: DataSource,
    private readonly access: ServerAccess,
    private readonly dumps: TenantDumps,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
    @Optional() private readonly dns?: SiteDns,
  ) {}

  async sweep(input: { install: Install; servers: Server[]; dbServer: Server | null; names: string[]; certificates: BackupCertificate[] }): Promise<SweepResult> {
    const { install, servers, dbServer } = input;
    const items: SweepItem[] = [];
    for (const server of servers) {
      const where = server.hostname;
      if (server.state === 'down') {
        items.push({ where, what: 'home', name: homeOn(server, install), state: 'unchecked', detail: 'server is down' });
        continue;
      }
      const executor = this.access.executorFor(server);
      const home = homeOn(server, install);
      let homeState: SweepItem['state'] = 'absent';
      if (await executor.exists(server, home)) {
        const marker = posix.join(home, HOME_MARKER);
        const ours = (await executor.run(server, ['cat', '--', marker])).stdout === homeMarker(install);
        homeState = ours ? 'leftover' : 'foreign';
      }
      items.push({ where, what: 'home', name: `${home} (with its links)`, state: homeState });
      const cron = cronFileOn(server, install);
      let cronState: SweepItem['state'] = 'absent';
      if (await executor.exists(server, cron)) cronState = (await executor.run(server, ['cat', '--', cron])).stdout.includes(`(install ${install.id})`) ? 'leftover' : 'foreign';
      items.push({ where, what: 'cron', name: cron, state: cronState });
      if (server.roles.includes('dispatcher')) {
        const row = await this.dataSource.getRepository(DispatcherConfig).findOneBy({ serverId: server.id });
        const found = row?.liveGeneration ? await new DispatcherFiles(executor, server).installFileIn(row.liveGeneration, install.fsName) : null;
        const name = found ?? installFile(install.fsName);
        const live = found !== null;
        items.push({ where, what: 'vhost', name, state: live ? 'leftover' : 'absent', detail: row?.liveGeneration ? `live generation ${row.liveGeneration}` : 'no live generation' });
      }
      if (managesPhp(server, this.config)) {
        const row = await this.dataSource.getRepository(HandlerConfig).findOneBy({ serverId: server.id });
        const name = poolFileOf(install);
        const live = row?.liveGeneration ? (await executor.run(server, ['test', '-e', posix.join(server.phpFpmPoolDir!, POOL_GENERATIONS_DIR, row.liveGeneration, name)])).exitCode === 0 : false;
        items.push({ where, what: 'pool', name, state: live ? 'leftover' : 'absent', detail: row?.liveGeneration ? `live generation ${row.liveGeneration}` : 'no live generation' });
        const user = await executor.run(server, ['getent', 'passwd', phpUserOf(install)]);
        const userState = user.exitCode === 2 ? 'absent' : (user.stdout.trim().split(':')[4] ?? '') === installUserComment(install) ? 'leftover' : 'foreign';
        items.push({ where, what: 'system-user', name: phpUserOf(install), state: userState });
      }
    }
    for (const cert of input.certificates) {
      for (const server of servers.filter((s) => cert.servers.includes(s.id) && s.state !== 'down')) {
        for (const path of [cert.pem, cert.key]) {
          items.push({ where: server.hostname, what: 'certificate', name: path, state: (await this.access.executorFor(server).exists(server, path)) ? 'leftover' : 'absent' });
        }
      }
    }
    if (dbServer) {
      const owner = await this.dumps.databaseOwner(dbServer, install.dbName, install.id);
      items.push({ where: dbServer.hostname, what: 'database', name: install.dbName, state: owner === 'ours' ? 'leftover' : owner });
      const accounts = await this.dumps.accounts(dbServer, { user: install.dbUser, password: decryptSecret(this.config.secretsKey, install.dbPasswordEnc) });
      if (accounts.size === 0) items.push({ where: dbServer.hostname, what: 'database-user', name: install.dbUser, state: 'absent' });
      for (const [host, ours] of accounts) items.push({ where: dbServer.hostname, what: 'database-user', name: `${install.dbUser}@${host}`, state: ours ? 'leftover' : 'foreign' });
    }
    for (const name of input.names) {
      if (!this.dns) {
        items.push({ where: 'dns', what: 'dns', name, state: 'unchecked', detail: 'no DNS adapter configured' });
        continue;
      }
      const records = await this.dns.lookup(name);
      items.push({ where: 'dns', what: 'dns', name, state: records === null ? 'unchecked' : records.length > 0 ? 'leftover' : 'absent', detail: records === null ? 'zone not managed' : records.map((r) => `${r.type} ${r.content}`).join(', ') || undefined });
    }
    items.push(...(await this.catalogClaims(install)));
    const leftovers = items.filter((i) => i.state === 'leftover');
    return { at: new Date().toISOString(), checked: items.length, leftovers, items };
  }

  /** The install's claims in the catalog: names, IPs, FTP account, mounts. */
  private async catalogClaims(install: Install): Promise<SweepItem[]> {
    const m = this.dataSource.manager;
    const siteIds = (await m.find(InstallSite, { where: { installId: install.id } })).map((s) => s.id);
    const counts: [string, number][] = [
      ['site_names', await m.count(SiteName, { where: { installId: install.id } })],
      ['install_site_ips', siteIds.length ? await m.count(InstallSiteIp, { where: { installSiteId: In(siteIds) } }) : 0],
      ['ftp_accounts', await m.count(FtpAccount, { where: { installId: install.id } })],
      ['startup_mounts', await m.count(StartupMount, { where: { installId: install.id } })],
    ];
    return counts.map(([table, n]) => ({ where: 'catalog', what: 'catalog' as const, name: table, state: n > 0 ? 'leftover' as const : 'absent' as const, detail: n > 0 ? `${n} row(s)` : undefined }));
  }
}
