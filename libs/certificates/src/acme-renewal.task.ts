import { Inject, Injectable } from '@nestjs/common';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { RecurringTask } from '@app/queue';
import { AcmeRequests } from './acme-requests.service.js';

/** How often the renewal task looks for certificates to renew. */
export const ACME_RENEWAL_EVERY_MS = 60_000;

/** When ACME is configured: due renewals every minute (a recurring task). */
@Injectable()
export class AcmeRenewalTask extends RecurringTask {
  constructor(
    private readonly requests: AcmeRequests,
    @Inject(ENGINE_CONFIG) config: EngineConfig,
  ) {
    super({ name: 'AcmeRenewals', everyMs: ACME_RENEWAL_EVERY_MS, enabled: config.acme !== null, failure: 'looking for certificates to renew failed' });
  }

  protected async tick(): Promise<void> {
    await this.requests.renewDue();
  }
}
