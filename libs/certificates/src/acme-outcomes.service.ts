import { Inject, Injectable, Logger } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { InstallSite } from '@app/catalog';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { MailService } from '@app/mail';

/** Cooldown after the n-th failure in a row (then the last one): the CA's rate limits are not spent on a name that keeps failing. */
export const ACME_BACKOFF_MS = [3_600_000, 4 * 3_600_000, 12 * 3_600_000, 24 * 3_600_000] as const;
/** Operations are mailed when a site reaches this many failures in a row. */
export const ACME_MAIL_AFTER_FAILURES = 3;
/** At most this much earlier than `notAfter - renewDays` (spreads the renewals of certificates issued together). */
const JITTER_MAX_MS = 24 * 3_600_000;
/** A renewal is never planned sooner than this from now (a certificate shorter-lived than the renew window). */
const MIN_NEXT_MS = 3_600_000;

/** When a certificate valid until `notAfter` is renewed: `renewDays` before, minus up to a day of jitter, not before an hour from now. */
export function nextRenewal(notAfter: Date, renewDays: number, now = new Date(), random = Math.random): Date {
  const due = notAfter.getTime() - renewDays * 86_400_000 - Math.floor(random() * JITTER_MAX_MS);
  return new Date(Math.max(due, now.getTime() + MIN_NEXT_MS));
}

export const backoffAfter = (failures: number): number => ACME_BACKOFF_MS[Math.min(Math.max(failures, 1), ACME_BACKOFF_MS.length) - 1]!;

/**
 * A site's ACME attempts as the catalog keeps them: a failure counts, is
 * kept (shown by the API), backs the next attempt off, and mails
 * operations once it is the third in a row; the certificate serving stays.
 */
@Injectable()
export class AcmeOutcomes {
  private readonly logger = new Logger('AcmeOutcomes');

  constructor(
    private readonly dataSource: DataSource,
    private readonly mail: MailService,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
  ) {}

  async attempted(siteId: number, now = new Date()): Promise<void> {
    await this.dataSource.getRepository(InstallSite).update({ id: siteId }, { acmeLastAttemptAt: now });
  }

  async failed(siteId: number, error: string, now = new Date()): Promise<{ failures: number; nextAttemptAt: Date; mailed: boolean }> {
    const repo = this.dataSource.getRepository(InstallSite);
    await repo.createQueryBuilder().update(InstallSite).set({ acmeFailures: () => 'acme_failures + 1' }).where('id = :id', { id: siteId }).execute();
    const site = await repo.findOneByOrFail({ id: siteId });
    const nextAttemptAt = new Date(now.getTime() + backoffAfter(site.acmeFailures));
    const lastError = error.replace(/\s+/g, ' ').slice(0, 1000);
    await repo.update({ id: siteId }, { acmeLastError: lastError, acmeLastAttemptAt: now, ...(site.acmeRenew ? { acmeNextAttemptAt: nextAttemptAt } : {}) });
    let mailed = false;
    if (site.acmeFailures === ACME_MAIL_AFTER_FAILURES) mailed = await this.mailOps(site, lastError, nextAttemptAt);
    return { failures: site.acmeFailures, nextAttemptAt, mailed };
  }

  private async mailOps(site: InstallSite, error: string, next: Date): Promise<boolean> {
    const subject = `ACME: the certificate of ${site.hostname} failed ${site.acmeFailures} times in a row`;
    if (!this.config.opsEmail) {
      this.logger.warn(`OPS_EMAIL is not set: not mailed: ${subject}`);
      return false;
    }
    await this.mail.send({
      to: this.config.opsEmail,
      subject,
      messageId: `<acme-${site.id}-${site.acmeFailures}-${Date.now()}@shop-engine>`,
      text: [
        `Issuing or renewing the certificate of ${site.hostname} (install ${site.installId}, site ${site.id}) failed ${site.acmeFailures} times in a row.`,
        `Last error: ${error}`,
        '',
        `The current certificate keeps serving${site.certNotAfter ? ` (valid until ${site.certNotAfter.toISOString()})` : ''}. Next attempt: ${next.toISOString()}.`,
        `Check that the name resolves to the install's dispatchers, then: POST /v1/installs/${site.installId}/sites/${site.id}/certificate/acme or shopctl site:acme --install ${site.installId} --site ${site.id}.`,
        '',
      ].join('\n'),
    });
    return true;
  }
}
