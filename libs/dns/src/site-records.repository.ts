import { Injectable } from '@nestjs/common';
import { DataSource, In } from 'typeorm';
import { Install, InstallSite, InstallSiteIp, ServerIp } from '@app/catalog';
import { NotFoundError } from '@app/common';
import { recordsOfSites } from './dns-records.js';
import type { DnsRecord } from './site-dns.js';

/** The records an install's sites must serve, read from the catalog (install_site_ips -> server_ips). */
@Injectable()
export class SiteRecordsRepository {
  constructor(private readonly dataSource: DataSource) {}

  async forInstall(installId: number): Promise<Map<string, DnsRecord[]>> {
    const m = this.dataSource.manager;
    if (!(await m.exists(Install, { where: { id: installId } }))) throw new NotFoundError('Install', installId);
    const sites = await m.find(InstallSite, { where: { installId }, order: { id: 'ASC' } });
    const held = sites.length ? await m.find(InstallSiteIp, { where: { installSiteId: In(sites.map((s) => s.id)) } }) : [];
    const ips = held.length ? await m.find(ServerIp, { where: { id: In([...new Set(held.map((h) => h.serverIpId))]) } }) : [];
    const address = new Map(ips.map((ip) => [ip.id, ip.ip]));
    return recordsOfSites(
      sites.map((site) => ({
        hostname: site.hostname,
        secureHostname: site.secureHostname,
        ips: held.filter((h) => h.installSiteId === site.id).map((h) => address.get(h.serverIpId)).filter((ip): ip is string => ip !== undefined),
      })),
    );
  }
}
