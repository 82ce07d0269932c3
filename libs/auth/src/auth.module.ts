import { Module, type DynamicModule } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { ApiTokenGuard } from './api-token.guard.js';
import { ApiTokensService } from './api-tokens.service.js';
import { TokensController } from './tokens.controller.js';

/** API tokens: issuing, checking, and (for the HTTP app) the global guard. */
@Module({})
export class AuthModule {
  /** For the CLI: issue, list and revoke tokens. */
  static forCli(): DynamicModule {
    return { module: AuthModule, providers: [ApiTokensService], exports: [ApiTokensService] };
  }

  /** For the HTTP API: also the global guard and the tokens endpoints. */
  static forHttp(): DynamicModule {
    return {
      module: AuthModule,
      controllers: [TokensController],
      providers: [ApiTokensService, { provide: APP_GUARD, useClass: ApiTokenGuard }],
      exports: [ApiTokensService],
    };
  }
}
