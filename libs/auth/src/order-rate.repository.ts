import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import type { Repository } from 'typeorm';
import { ApiToken } from '@app/catalog';

/**
 * The order hook's per-token counters, on the token's own row so that every
 * API instance sharing the catalog counts the same orders. Two conditional
 * single-row UPDATEs, no transaction: the row lock orders concurrent takers,
 * and each statement re-reads the row it updates. The window only moves
 * forward: a request that read the clock just before the minute turned,
 * arriving after another opened the new minute, counts in the new minute
 * (it neither resets it to one nor finds its own minute gone and is refused).
 */
@Injectable()
export class OrderRateRepository {
  constructor(@InjectRepository(ApiToken) private readonly tokens: Repository<ApiToken>) {}

  /** Counts one order of `window` (or of a later window already open) unless `limit` were counted there already; false when refused. */
  async take(tokenId: number, window: number, limit: number): Promise<boolean> {
    const opened = await this.tokens
      .createQueryBuilder()
      .update(ApiToken)
      .set({ orderWindow: window, orderCount: 1 })
      .where('id = :id AND (order_window IS NULL OR order_window < :window)', { id: tokenId, window })
      .execute();
    if ((opened.affected ?? 0) > 0) return true;
    const counted = await this.tokens
      .createQueryBuilder()
      .update(ApiToken)
      .set({ orderCount: () => 'order_count + 1' })
      .where('id = :id AND order_window >= :window AND order_count < :limit', { id: tokenId, window, limit })
      .execute();
    return (counted.affected ?? 0) > 0;
  }
}
