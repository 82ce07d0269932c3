import { SetMetadata } from '@nestjs/common';
import type { TokenScope } from '@app/catalog';

export const REQUIRED_SCOPE = 'auth:required-scope';
export const PUBLIC_ROUTE = 'auth:public';

/** The scope a route needs; a route without this (and not @Public) needs `admin`. */
export const RequireScope = (scope: TokenScope) => SetMetadata(REQUIRED_SCOPE, scope);

/** Operations endpoints (/health, /docs) that answer without a token. */
export const Public = () => SetMetadata(PUBLIC_ROUTE, true);

/** Who made an authenticated request; set by the guard on the request. */
export interface Principal {
  tokenId: number;
  name: string;
  scopes: TokenScope[];
}
