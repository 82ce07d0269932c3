import { readFileSync } from 'node:fs';
import { Command, CommandRunner, Option } from 'nest-commander';
import { AcmeRequests, SiteCertificateService, type SiteCertificateView } from '@app/certificates';
import { DomainError } from '@app/common';
import { JobsAdminService } from '@app/queue';
import { out, SnippetError } from './cli-output.js';
import { followJob } from './follow-job.js';
import { cliActor } from './token-create.command.js';

interface SiteOptions {
  install?: number;
  site?: number;
  cert?: string;
  key?: string;
  allowExpiringSoon?: boolean;
  dryRun?: boolean;
  wait?: boolean;
  timeout?: number;
}

const id = (flag: string) => (value: string): number => {
  if (!/^\d{1,9}$/.test(value) || Number(value) < 1) throw new SnippetError(`${flag} is a number`);
  return Number(value);
};
const readPem = (path: string, what: string): string => {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new SnippetError(`cannot read the ${what} file ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
};

function describe(v: SiteCertificateView): string {
  return `site ${v.siteId} (${v.names.join(', ')}) of install ${v.installId}${v.sha256 ? `: certificate ${v.sha256.slice(0, 16)} by ${v.issuer}, valid until ${v.notAfter}` : ''}, on ${v.servers.join(', ')}; serving now: ${v.previous.sha256 ? `${v.previous.sha256.slice(0, 16)} (${v.previous.source}, until ${v.previous.notAfter})` : 'none'}`;
}

abstract class SiteCommand extends CommandRunner {
  @Option({ flags: '--install <id>', description: 'the install' })
  parseInstall(value: string): number {
    return id('--install')(value);
  }

  @Option({ flags: '--site <id>', description: 'the site (its id: GET /v1/installs/:id)' })
  parseSite(value: string): number {
    return id('--site')(value);
  }

  @Option({ flags: '--dry-run', description: 'check everything and change nothing' })
  parseDryRun(): boolean {
    return true;
  }

  @Option({ flags: '--no-wait', description: 'queue it and return' })
  parseNoWait(): boolean {
    return false;
  }

  @Option({ flags: '--timeout <seconds>', description: 'how long to follow it (default 600)' })
  parseTimeout(value: string): number {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > 86_400) throw new SnippetError('--timeout must be a number of seconds');
    return n;
  }

  protected ids(options: SiteOptions): { install: number; site: number } {
    if (options.install === undefined || options.site === undefined) throw new SnippetError('--install <id> and --site <id> are required');
    return { install: options.install, site: options.site };
  }
}

/** The seed's "Change SSL" (PUT /v1/installs/:id/sites/:siteId/certificate): checks the pair, queues its install, follows it. */
@Command({
  name: 'site:certificate',
  description: "install an uploaded certificate on a site (--install N --site S --cert FILE --key FILE): checked first, written to every dispatcher, nginx rebuilt, the served certificate probed; the previous one restored on failure",
})
export class SiteCertificateCommand extends SiteCommand {
  constructor(
    private readonly certificates: SiteCertificateService,
    private readonly jobs: JobsAdminService,
  ) {
    super();
  }

  async run(_args: string[], options: SiteOptions): Promise<void> {
    const { install, site } = this.ids(options);
    if (!options.cert || !options.key) throw new SnippetError('--cert <file> (PEM chain, leaf first) and --key <file> (PEM key) are required');
    let result: SiteCertificateView;
    try {
      result = await this.certificates.upload(install, site, { certificate: readPem(options.cert, 'certificate'), key: readPem(options.key, 'key'), allowExpiringSoon: options.allowExpiringSoon ?? false, dryRun: options.dryRun ?? false }, { actor: cliActor(), via: 'cli' });
    } catch (e) {
      if (e instanceof DomainError) throw new SnippetError(`${e.code}: ${e.message}`);
      throw e;
    }
    if (result.jobId === null) {
      out(`dry run: ${describe(result)}; files ${result.files?.certificate}, ${result.files?.key}; nothing changed`);
      return;
    }
    out(`installing ${describe(result)}: job ${result.jobId} queued`);
    if (options.wait !== false) await followJob(this.jobs, result.jobId, { timeoutS: options.timeout ?? 600 });
  }

  @Option({ flags: '--cert <file>', description: 'PEM chain, the leaf first' })
  parseCert(value: string): string {
    return value;
  }

  @Option({ flags: '--key <file>', description: 'PEM private key (never printed)' })
  parseKey(value: string): string {
    return value;
  }

  @Option({ flags: '--allow-expiring-soon', description: 'install a certificate expiring within 7 days anyway' })
  parseAllow(): boolean {
    return true;
  }
}

/** POST /v1/installs/:id/sites/:siteId/certificate/acme: issues the site's certificate through the ACME CA; follows the issue job. */
@Command({
  name: 'site:acme',
  description: "issue a site's certificate through the ACME CA (--install N --site S): pre-flight, HTTP-01 answered by the dispatchers, installed as an upload, renewed before expiry",
})
export class SiteAcmeCommand extends SiteCommand {
  constructor(
    private readonly acme: AcmeRequests,
    private readonly jobs: JobsAdminService,
  ) {
    super();
  }

  async run(_args: string[], options: SiteOptions): Promise<void> {
    const { install, site } = this.ids(options);
    let result: SiteCertificateView;
    try {
      result = await this.acme.request(install, site, { dryRun: options.dryRun ?? false }, { actor: cliActor(), via: 'cli' });
    } catch (e) {
      if (e instanceof DomainError) throw new SnippetError(`${e.code}: ${e.message}`);
      throw e;
    }
    if (result.jobId === null) {
      out(`dry run: ${describe(result)} would be issued through ACME; nothing changed`);
      return;
    }
    out(`issuing ${describe(result)} through ACME: job ${result.jobId} queued (then an install job)`);
    if (options.wait !== false) await followJob(this.jobs, result.jobId, { timeoutS: options.timeout ?? 600 });
  }
}
