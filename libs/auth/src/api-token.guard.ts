import { Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { TokenScope } from '@app/catalog';
import { DomainError } from '@app/common';
import { ApiTokensService } from './api-tokens.service.js';
import { PUBLIC_ROUTE, REQUIRED_SCOPE, type Principal } from './auth.decorators.js';
import { scopeAllows } from './token-codec.js';

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
    const header = request.headers['authorization'];
    const match = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!match) {
      throw new DomainError('UNAUTHENTICATED', 'Send an API token: Authorization: Bearer <token>', 401);
    }
    const token = await this.tokens.authenticate(match[1]!);
    if (!token) throw new DomainError('UNAUTHENTICATED', 'The API token is unknown or revoked', 401);
    if (!scopeAllows(token.scopes, required)) {
      throw new DomainError(
        'FORBIDDEN',
        `This token (${token.name}) lacks the "${required}" scope needed here`,
        403,
        { required, granted: token.scopes },
      );
    }
    request.principal = { tokenId: token.id, name: token.name, scopes: token.scopes };
    return true;
  }
}
