import { Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { TokenScope } from '@app/catalog';
import { ApiTokensService } from './api-tokens.service.js';
import { PUBLIC_ROUTE, REQUIRED_SCOPE, type Principal } from './auth.decorators.js';

/**
 * Global guard: every route needs `Authorization: Bearer <token>` with the
 * route's scope (default `admin`), unless marked @Public. Fails closed.
 */
@Injectable()
export class ApiTokenGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly tokens: ApiTokensService,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC_ROUTE, targets)) return true;
    const required = this.reflector.getAllAndOverride<TokenScope>(REQUIRED_SCOPE, targets) ?? 'admin';

    const request = context.switchToHttp().getRequest<{
      headers: Record<string, string | string[] | undefined>;
      principal?: Principal;
    }>();
    request.principal = await this.tokens.authorize(request.headers['authorization'], required);
    return true;
  }
}
