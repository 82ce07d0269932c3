import { Module } from '@nestjs/common';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { PowerDnsClient } from './powerdns.client.js';
import { PowerDnsSiteDns } from './powerdns-site-dns.adapter.js';
import { SiteRecordsRepository } from './site-records.repository.js';
import { SiteDns } from './site-dns.js';
import { UnmanagedSiteDns } from './unmanaged-site-dns.adapter.js';

/**
 * Provides `SiteDns`: PowerDNS's HTTP API when DNS_API_URL is set, else an
 * implementation for which every name is unmanaged (the records to set are
 * still computed). Import it where an operation publishes a site's names.
 */
@Module({
  providers: [
    SiteRecordsRepository,
    {
      provide: SiteDns,
      inject: [ENGINE_CONFIG, SiteRecordsRepository],
      useFactory: (config: EngineConfig, records: SiteRecordsRepository): SiteDns =>
        config.dns
          ? new PowerDnsSiteDns(new PowerDnsClient({ apiUrl: config.dns.apiUrl, apiKey: config.dns.apiKey, serverId: config.dns.serverId }), records, { ttl: config.dns.ttl })
          : new UnmanagedSiteDns(records),
    },
  ],
  exports: [SiteDns],
})
export class DnsModule {}
