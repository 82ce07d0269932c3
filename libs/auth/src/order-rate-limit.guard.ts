import { Inject, Injectable, UseGuards, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { DomainError } from '@app/common';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import type { Principal } from './auth.decorators.js';
import { OrderRateRepository } from './order-rate.repository.js';

const WINDOW_MS = 60_000;

/**
 * ORDERS_PER_MINUTE orders per token and calendar minute, counted in the
 * catalog (shared by every API instance). Runs after the global token guard,
 * before the body is read: a refused order creates nothing.
 */
@Injectable()
export class OrderRateLimitGuard implements CanActivate {
  constructor(
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
    private readonly rates: OrderRateRepository,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const limit = this.config.orders.perMinutePerToken;
    if (limit === 0) return true;
    const http = context.switchToHttp();
    const principal = http.getRequest<{ principal?: Principal }>().principal;
    // Only reachable if the route were made public by mistake: fail closed.
    if (!principal) throw new DomainError('UNAUTHENTICATED', 'Send an API token: Authorization: Bearer <token>', 401);
    const now = Date.now();
    const window = Math.floor(now / WINDOW_MS);
    if (await this.rates.take(principal.tokenId, window, limit)) return true;
    const retryAfter = Math.max(1, Math.ceil(((window + 1) * WINDOW_MS - now) / 1000));
    http.getResponse<{ setHeader(name: string, value: string): void }>().setHeader('Retry-After', String(retryAfter));
    throw new DomainError(
      'RATE_LIMITED',
      `The token ${principal.name} already placed ${limit} orders this minute (ORDERS_PER_MINUTE); nothing was created, try again in ${retryAfter} s`,
      429,
      { limitPerMinute: limit, retryAfterSeconds: retryAfter },
    );
  }
}

/** The order hook's rate limit (see OrderRateLimitGuard). */
export const LimitOrderRate = () => UseGuards(OrderRateLimitGuard);
