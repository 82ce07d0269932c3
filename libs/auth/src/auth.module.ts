import { Module, type DynamicModule } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { ApiTokenGuard } from './api-token.guard.js';
import { ApiTokensService } from './api-tokens.service.js';
import { OrderRateLimitGuard } from './order-rate-limit.guard.js';
import { OrderRateRepository } from './order-rate.repository.js';
import { TokensController } from './tokens.controller.js';

/**
 * API tokens: issuing, checking, and (for the HTTP app) the global guard and
 * the order rate limit. Global: /health reads an optional token, and the
 * installs controller applies the rate limit.
 */
@Module({})
export class AuthModule {
  /** For the CLI: issue, list and revoke tokens. */
  static forCli(): DynamicModule {
    return { module: AuthModule, global: true, providers: [ApiTokensService], exports: [ApiTokensService] };
  }

  /** For the HTTP API: also the global guard, the tokens endpoints and the order rate limit. */
  static forHttp(): DynamicModule {
    return {
      module: AuthModule,
      global: true,
      controllers: [TokensController],
      providers: [ApiTokensService, OrderRateRepository, OrderRateLimitGuard, { provide: APP_GUARD, useClass: ApiTokenGuard }],
      exports: [ApiTokensService, OrderRateRepository, OrderRateLimitGuard],
    };
  }
}
