import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { Install, InstallSite, Server, SharedCodeGroup } from '@app/catalog';
import { CodeReleases, type CodebaseManifest } from '@app/codebases';
import { SiteDns, type DnsChange } from '@app/dns';
import { ServerAccess } from '@app/hosts';
import { certificateCoversNames, templatesOf, type SqlEvent } from './site-rules.js';

/**
 * What a request needs to tell its plan before anything changes (the API
 * and the snippets, in engines and in the CLI): the install's manifest,
 * DNS as it is and as it would be, and whether an installed certificate
 * covers new names. Reads only.
 */
@Injectable()
export class SitePlans {
  constructor(
    private readonly dataSource: DataSource,
    private readonly access: ServerAccess,
    private readonly releases: CodeReleases,
    readonly dns: SiteDns,
  ) {}

  /** The manifest of the release the install is on. */
  async manifestOf(install: Install): Promise<CodebaseManifest> {
    const group = await this.dataSource.getRepository(SharedCodeGroup).findOneByOrFail({ id: install.sharedCodeGroupId! });
    return this.releases.recordedManifest(group, install.codeRevision ?? group.revision!);
  }

  /** The config files the manifest renders (every one is rendered again). */
  async configFiles(install: Install): Promise<string[]> {
    return ((await this.manifestOf(install)).templates ?? []).map((t) => t.target);
  }

  async sqlTemplates(install: Install, event: SqlEvent): Promise<string[]> {
    return templatesOf(await this.manifestOf(install), event);
  }

  /** Whether the site's installed certificate (read from the master) covers every one of `names`; false when there is none or it does not read. */
  async certificateCovers(site: Pick<InstallSite, 'sslPemPath'>, master: Server, names: readonly string[]): Promise<boolean> {
    if (!site.sslPemPath) return false;
    try {
      return certificateCoversNames(await this.access.executorFor(master).readFile(master, site.sslPemPath), names);
    } catch {
      return false;
    }
  }

  /**
   * What DNS would look like once `names` are served at `ips`: the
   * contract's planUnpublish names each one's zone and what it serves now;
   * its `after` is what the operation publishes.
   */
  async projectDns(names: readonly string[], ips: readonly string[]): Promise<DnsChange[]> {
    if (names.length === 0) return [];
    const records = [...new Set(ips)].map((ip) => ({ type: ip.includes(':') ? ('AAAA' as const) : ('A' as const), content: ip }));
    return (await this.dns.planUnpublish(names)).map((change) => ({ ...change, after: records }));
  }

  async planUnpublish(names: readonly string[]): Promise<DnsChange[]> {
    return names.length === 0 ? [] : this.dns.planUnpublish(names);
  }
}
