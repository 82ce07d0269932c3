import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { Job, SharedCodeGroup } from '@app/catalog';
import { DomainError } from '@app/common';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { RecurringTask } from '@app/queue';
import { CodeGroupsService } from './code-groups.service.js';

/** How often a worker looks for retired groups that no install uses any more. */
export const RETIRED_GROUPS_EVERY_MS = 60_000;

/**
 * Every minute (a recurring task): a retired code group with no install
 * left (its last install moved, or was removed) is removed with its
 * repository and releases on every server, as `DELETE /v1/code-groups/:id`
 * does (the same checks in one transaction: a group something still uses is
 * left alone). Safe on several engines (the removal's idempotency key).
 */
@Injectable()
export class RetiredGroupsTask extends RecurringTask {
  constructor(
    private readonly dataSource: DataSource,
    private readonly groups: CodeGroupsService,
  ) {
    super({ name: 'RetiredGroups', everyMs: RETIRED_GROUPS_EVERY_MS, failure: 'removing retired code groups failed' });
  }

  protected async tick(): Promise<void> {
    await this.removeUnused();
  }

  /** Queues the removal of every retired group nothing uses; returns their ids. */
  async removeUnused(): Promise<number[]> {
    const retired = await this.dataSource.getRepository(SharedCodeGroup).find({ where: { state: 'retired', installCount: 0 }, order: { id: 'ASC' } });
    const queued: number[] = [];
    for (const group of retired) {
      if (await this.dataSource.getRepository(Job).existsBy({ idempotencyKey: `codegroup.remove:${group.id}` })) continue;
      try {
        const { jobId } = await this.groups.remove(group.id, { actor: 'retired-groups', via: 'cron' });
        this.logger.log(`code group ${group.name} is retired and unused: its removal is queued (job ${jobId})`);
        queued.push(group.id);
      } catch (error) {
        // Still used (an install, a slot or a pin rule): left until it is not.
        if (!(error instanceof DomainError)) throw error;
      }
    }
    return queued;
  }
}
