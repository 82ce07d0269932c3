import { Inject, Injectable, Logger } from '@nestjs/common';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { DomainError } from '@app/common';
import { MailService } from '@app/mail';
import { RecurringTask } from '@app/queue';
import { CloudServersService } from './cloud-servers.service.js';

/** Operations are reminded this long before a lease ends. */
export const LEASE_REMINDER_BEFORE_MS = 24 * 60 * 60_000;
/** How often the cron role looks at the leases. */
export const LEASE_CHECK_EVERY_MS = 60_000;

export interface LeaseSweep {
  reminded: number[];
  drained: number[];
  /** Servers whose lease ended but that could not be drained (the only handler of an install): said by mail and log. */
  refused: number[];
}

/**
 * Cloud leases: a mail to operations (OPS_EMAIL) 24 h before a lease ends,
 * once per expiry (`leaseRemindedAt`, claimed by a conditional update, so
 * two engines never both mail); at the end the server is drained unless
 * its lease was extended. Safe on several engines: the reminder is
 * claimed, a drain of a server already draining is skipped.
 */
@Injectable()
export class CloudLeases {
  private readonly logger = new Logger('CloudLeases');

  constructor(
    private readonly clouds: CloudServersService,
    private readonly mail: MailService,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
  ) {}

  async sweep(now = new Date()): Promise<LeaseSweep> {
    const result: LeaseSweep = { reminded: [], drained: [], refused: [] };
    for (const server of await this.clouds.leasesToRemind(now, LEASE_REMINDER_BEFORE_MS)) {
      if (!(await this.clouds.claimReminder(server, now))) continue;
      const expires = server.leaseExpiresAt!;
      try {
        await this.notify({
          subject: `Cloud server ${server.hostname}: lease ends ${expires.toISOString()}`,
          messageId: `<cloud-lease-${server.id}-${Math.floor(expires.getTime() / 1000)}@shop-engine>`,
          text: [
            `The lease of cloud server ${server.hostname} (server ${server.id}, ${server.privateIp ?? 'no private IP'}) ends at ${expires.toISOString()}.`,
            '',
            'At that time it is drained: it takes no new PHP request, and its installs are served by their other handlers.',
            `To keep it, extend the lease: PATCH /v1/cloud-servers/${server.id} {"leaseExpiresAt": "<new time>"} or shopctl cloud:lease ${server.id} <new time>.`,
            '',
          ].join('\n'),
        });
      } catch (error) {
        // Not sent: the next run tries again.
        await this.clouds.releaseReminder(server);
        throw error;
      }
      result.reminded.push(server.id);
    }
    for (const server of await this.clouds.expiredLeases(now)) {
      try {
        await this.clouds.drain(server.id, { actor: 'lease', via: 'cron' });
        result.drained.push(server.id);
        this.logger.log(`the lease of ${server.hostname} ended at ${server.leaseExpiresAt!.toISOString()}: draining it`);
      } catch (error) {
        if (!(error instanceof DomainError)) throw error;
        // Another engine drained it meanwhile: nothing to say.
        if (error.code === 'SERVER_DRAINING') continue;
        result.refused.push(server.id);
        this.logger.warn(`the lease of ${server.hostname} ended, but it cannot be drained: ${error.message}`);
      }
    }
    return result;
  }

  private async notify(message: { subject: string; messageId: string; text: string }): Promise<void> {
    if (!this.config.opsEmail) {
      this.logger.warn(`OPS_EMAIL is not set: not mailed: ${message.subject}`);
      return;
    }
    await this.mail.send({ to: this.config.opsEmail, ...message });
  }
}

/** The leases, every minute (a recurring task). */
@Injectable()
export class CloudLeaseTask extends RecurringTask {
  constructor(
    private readonly leases: CloudLeases,
  ) {
    super({ name: 'CloudLeases', everyMs: LEASE_CHECK_EVERY_MS, failure: 'looking at the cloud leases failed' });
  }

  protected async tick(): Promise<void> {
    await this.leases.sweep();
  }
}
