import { Controller, ForbiddenException, Get, Header, Inject, Req, Res, UnauthorizedException } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import { timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import { Public } from '@app/auth';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { Metrics } from './metrics.service.js';

interface ScrapeRequest {
  socket: { remoteAddress?: string };
  headers: Record<string, string | string[] | undefined>;
}

/** True for 127.0.0.0/8, ::1 and IPv4-mapped loopback: a scraper on this machine. */
export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  if (isIP(v4) === 4) return v4.startsWith('127.');
  return address === '::1';
}

/**
 * Prometheus scrapes: answered without an API token to a scraper on the
 * loopback; from elsewhere only with `Authorization: Bearer <METRICS_TOKEN>`
 * (none set: refused). Not in the OpenAPI document (it is not JSON).
 */
@ApiExcludeController()
@Controller()
export class MetricsController {
  constructor(
    private readonly metrics: Metrics,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
  ) {}

  @Get('metrics')
  @Public()
  @Header('Cache-Control', 'no-store')
  async scrape(@Req() req: ScrapeRequest, @Res({ passthrough: true }) res: { type(contentType: string): unknown }): Promise<string> {
    this.allow(req);
    const { contentType, body } = await this.metrics.exposition();
    res.type(contentType);
    return body;
  }

  private allow(req: ScrapeRequest): void {
    const token = this.config.metricsToken;
    const header = req.headers.authorization;
    const given = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7) : null;
    if (token !== null && given !== null) {
      const a = Buffer.from(given);
      const b = Buffer.from(token);
      if (a.length === b.length && timingSafeEqual(a, b)) return;
      throw new UnauthorizedException('wrong metrics token');
    }
    if (isLoopback(req.socket.remoteAddress)) return;
    throw token === null
      ? new ForbiddenException('/metrics answers only on the loopback unless METRICS_TOKEN is set')
      : new UnauthorizedException('/metrics needs Authorization: Bearer <METRICS_TOKEN> from outside the loopback');
  }
}
